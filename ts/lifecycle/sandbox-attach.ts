// Re-attaching to a running sandbox from a new process (the shim daemon after a crash or an
// upgrade): the VM, its virtiofsd and the guest are separate processes that outlived the old
// owner. The state says where they are: QEMU is adopted by its recorded pid and start time and
// its QMP socket, the agent channel is dialled again (the guest reopens its port once it saw
// the old connection hang up; until then a request can go unanswered, so health is retried),
// and this process becomes the sandbox's owner. The plan and bundles come from the caller (the
// daemon persisted them): re-planning could draw differently after containers were removed.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { connectAgent, type AgentClient } from '../agent/client.js';
import type { BundleInput, ResourcePlan } from '../plan/plan.js';
import { Vm } from '../qemu/vm.js';
import type { RunningVm } from '../qemu/launch.js';
import { stepError, type LifecycleError } from './errors.js';
import { isAlive, killRecorded, processRef } from './process-ref.js';
import { readConfig } from './sandbox-inputs.js';
import { Sandbox, type SandboxOptions } from './sandbox.js';
import type { SandboxState } from './state-schema.js';
import { StateRecorder } from './state-recorder.js';
import type { StateStore } from './state-store.js';

/** What the previous owner kept besides the state: the plan it applied and its bundles. */
export interface AttachInput {
  readonly plan: ResourcePlan;
  readonly bundles: BundleInput[];
}

/** Budget for the guest to answer again on the re-dialled channel. */
const AGENT_ATTACH_MS = 60_000;

type Step<T> = Promise<Result<T, LifecycleError>>;

/** Why the recorded sandbox cannot be adopted, or null. */
function refusal(s: SandboxState): string | null {
  if (s.status !== 'ready') return `status is ${s.status}`;
  if (s.vm === null || s.vm.phase !== 'done' || s.vm.qemu === null) return 'no running VM recorded';
  if (!isAlive(s.vm.qemu)) return `QEMU (pid ${s.vm.qemu.pid}) is gone`;
  if (s.cgroups === null || s.cgroups.phase !== 'done') return 'no cgroups recorded';
  if (s.rootlessUser !== null && s.rootlessUser.phase !== 'removed')
    return 'rootless sandboxes are not re-attached yet';
  return null;
}

/** Dials the agent until it answers a health check (the guest may still hold the old channel). */
async function redialAgent(sid: string, socket: string): Step<AgentClient> {
  const deadline = Date.now() + AGENT_ATTACH_MS;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    const agent = await connectAgent(
      { kind: 'unix', path: socket },
      { dialTimeoutMs: 5_000, healthTimeoutMs: 3_000 },
    );
    if (agent.isOk()) {
      const health = await agent.value.check();
      if (health.isOk()) return ok(agent.value);
      agent.value.close();
      last = health.error.message;
    } else last = agent.error.message;
    await new Promise((r) => setTimeout(r, 300));
  }
  return err(stepError(sid, 'agent', `re-attach: the agent did not answer: ${last}`));
}

function adoptVm(
  sid: string,
  vm: NonNullable<SandboxState['vm']>,
  onExit: (why: string) => void,
): ResultAsync<RunningVm, LifecycleError> {
  const qemu = vm.qemu!;
  let stopping = false;
  return Vm.attach({
    pid: qemu.pid,
    alive: () => isAlive(qemu),
    qmpSocket: vm.qmpSocket,
    logPath: path.join(path.dirname(vm.qmpSocket), 'qemu.log'),
    onExit: (_exit, tail) => {
      if (!stopping) onExit(`QEMU exited: ${tail || 'no output'}`);
    },
  })
    .mapErr((e) => stepError(sid, 'vm', `re-attach: ${e.message}`))
    .map((adopted): RunningVm => ({
      vm: adopted,
      virtiofsd: null,
      agentSocket: vm.agentSocket,
      stop: async (timeoutMs = 5_000) => {
        stopping = true;
        await adopted.quit(timeoutMs);
        // virtiofsd exits once QEMU hangs up; a recorded one still running is killed.
        if (vm.virtiofsd !== null) await killRecorded(vm.virtiofsd);
        for (const s of [vm.qmpSocket, vm.agentSocket, vm.virtiofsSocket])
          rmSync(s, { force: true });
      },
    }));
}

/** QEMU went away under the adopted sandbox (as createSandbox's markVmGone). */
function markVmGone(sb: Sandbox, why: string): void {
  sb.vmGone = why;
  sb.agent.close();
  const onDisk = sb.recorder.store.read(sb.id);
  if (onDisk.isErr() || onDisk.value.status === 'deleting') return;
  void sb.recorder.tryUpdate((s) => ({ ...s, status: 'failed', error: why }));
}

/** Adopts the running sandbox `sandboxId`; nothing of it is changed but its owner. */
export function attachSandbox(
  store: StateStore,
  sandboxId: string,
  saved: AttachInput,
  options: SandboxOptions = {},
): ResultAsync<Sandbox, LifecycleError> {
  const run = async (): Step<Sandbox> => {
    const read = store.read(sandboxId);
    if (read.isErr()) return err(read.error);
    const state = read.value;
    const refused = refusal(state);
    if (refused !== null) return err(stepError(sandboxId, 'vm', `re-attach: ${refused}`));
    const config = await readConfig(sandboxId, state.configPath);
    if (config.isErr()) return err(config.error);
    let sb: Sandbox | null = null;
    let goneEarly: string | null = null;
    const vm = await adoptVm(sandboxId, state.vm!, (why) =>
      sb !== null ? markVmGone(sb, why) : (goneEarly = why),
    );
    if (vm.isErr()) return err(vm.error);
    const agent = await redialAgent(sandboxId, state.vm!.agentSocket);
    if (agent.isErr()) {
      vm.value.vm.qmp.close();
      return err(agent.error);
    }
    const recorder = new StateRecorder(store, state);
    const owned = recorder.tryUpdate((s) => ({ ...s, owner: processRef(process.pid) }));
    if (owned.isErr()) {
      agent.value.close();
      vm.value.vm.qmp.close();
      return err(owned.error);
    }
    const cgroups = state.cgroups!;
    sb = new Sandbox(
      recorder,
      config.value,
      { ...options, accel: state.vm!.accel, cgroupHost: cgroups.host },
      [...saved.bundles],
      saved.plan,
      vm.value,
      agent.value,
      cgroups.record,
    );
    if (goneEarly !== null) markVmGone(sb, goneEarly);
    return ok(sb);
  };
  return ResultAsync.fromPromise(run(), (e) =>
    stepError(sandboxId, 'vm', `re-attach: internal: ${(e as Error).message}`),
  ).andThen((r) => r);
}
