// The public API of the `kata-ts` package (`import … from 'kata-ts'`; package.json `exports["."]`
// is the compiled dist/index.js). Everything crosses this edge as neverthrow Results; errors are
// plain data (PlanError, LifecycleError, AgentError) with a formatter for the one-line messages
// the CLI prints. The addon itself is `kata-ts/native`.

// Inputs: Kata configuration.toml, OCI bundles, host facts.
export { parseKataConfig, defaultKataConfig, type ParsedConfig } from './config/parse-config.js';
export type {
  KataConfig,
  HypervisorConfig,
  AgentConfig,
  RuntimeConfig,
} from './config/kata-config.js';
export { parseOciSpec, readOciBundle, type OciSpec, type OciMount } from './spec/oci-spec.js';
export type { ContainerType } from './spec/container-type.js';
export { gatherHostFacts } from './host/gather-host-facts.js';
export {
  EXAMPLE_HOST_FACTS,
  type HostFacts,
  type PathFact,
  type BlockDeviceFact,
} from './plan/host-facts.js';

// The planner: plan(config, bundles, host facts) → ResourcePlan, pure.
export {
  plan,
  type PlanInput,
  type BundleInput,
  type ResourcePlan,
  type ContainerPlan,
} from './plan/plan.js';
export { formatPlanError, type PlanError, type Problem } from './errors.js';

// The sandbox lifecycle (what `kata-ts run` and the shim call).
export {
  createSandbox,
  stopSandbox,
  deleteSandbox,
  cleanup,
  Sandbox,
  type SandboxOptions,
  type CreateSandboxInput,
} from './lifecycle/sandbox.js';
export {
  addContainer,
  startContainer,
  wait,
  kill,
  pumpOutput,
  removeContainer,
  type AddContainerInput,
} from './lifecycle/container.js';
export {
  formatLifecycleError,
  type LifecycleError,
  type LifecycleStep,
} from './lifecycle/errors.js';
export type { SandboxState } from './lifecycle/state-schema.js';

// The guest agent client (ttrpc over a unix socket, vsock or hybrid vsock).
export {
  connectAgent,
  AgentClient,
  type AgentTarget,
  type AgentClientOptions,
} from './agent/client.js';
export type { AgentError } from './agent/errors.js';
