// Task Update: containerd sends the container's new OCI `linux.resources` as JSON in an Any
// (`types.containerd.io/opencontainers/runtime-spec/1/LinuxResources`, what CRI's
// UpdateContainerResources and `ctr task update` send). They are validated and applied in the
// guest with the agent's UpdateContainer (the container's cgroup there: memory, CPU, pids,
// hugepages). The VM itself is not resized: its vCPUs and memory stay as sized at create, so a
// limit above them is enforced only as far as the VM reaches (see the README's Kubernetes notes).
import { err, ok, type Result } from 'neverthrow';
import type { AgentClient } from '../agent/client.js';
import { formatPlanError } from '../errors.js';
import type { UpdateTaskRequest } from '../gen/containerd/task/v2/shim_pb.js';
import { toAgentResources } from '../plan/requests-oci.js';
import { parseLinuxResources } from '../spec/oci-spec.js';
import { UNIMPLEMENTED } from './stats.js';
import { unsupported, type TaskError } from './task-error.js';

export const LINUX_RESOURCES_TYPE_URL =
  'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

export async function updateTask(
  agent: AgentClient,
  req: UpdateTaskRequest,
): Promise<Result<void, TaskError>> {
  const where = `kata-ts shim: ${req.id}: Update`;
  const any = req.resources;
  if (any === undefined)
    return err({ kind: 'invalid-argument', message: `${where}: no resources` });
  if (any.typeUrl !== LINUX_RESOURCES_TYPE_URL)
    return err({
      kind: 'invalid-argument',
      message: `${where}: resources of type ${JSON.stringify(any.typeUrl.slice(0, 200))}, expected ${LINUX_RESOURCES_TYPE_URL}`,
    });
  const text = Buffer.from(any.value).toString('utf8');
  const parsed = parseLinuxResources(text, `${req.id}: Update resources`);
  if (parsed.isErr())
    return err({
      kind: 'invalid-argument',
      message: formatPlanError(parsed.error).join('; '),
    });
  const done = await agent.updateContainer({
    containerId: req.id,
    resources: toAgentResources(parsed.value),
  });
  if (done.isOk()) return ok(undefined);
  const e = done.error;
  if (e.kind === 'status' && e.code === UNIMPLEMENTED) return err(unsupported('update', req.id));
  return err({ kind: 'agent', message: `${where}: UpdateContainer: ${e.message}` });
}
