// An exec's process: containerd sends the OCI Process as JSON in an Any
// (types.containerd.io/opencontainers/runtime-spec/1/Process); the agent wants its own
// `grpc.Process`, which the planner's OCI converter already builds for containers.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ExecProcessRequestSchema } from '../gen/agent_pb.js';
import { toAgentSpec } from '../plan/requests-oci.js';
import type { OciSpec } from '../spec/oci-spec.js';

/** The agent's ExecProcess request for an OCI process. */
export function execRequest(
  containerId: string,
  execId: string,
  process: unknown,
): MessageInitShape<typeof ExecProcessRequestSchema> {
  const spec = toAgentSpec({ ociVersion: '1.0.2', process } as unknown as OciSpec, {
    rootPath: '',
    mounts: [],
    annotations: {},
  });
  return { containerId, execId, ...(spec.Process ? { process: spec.Process } : {}) };
}
