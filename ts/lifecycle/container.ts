// Containers of a running sandbox: addContainer (hot-plug block devices, vCPU resize +
// OnlineCPUMem, cgroup cpuset, copy volumes + watchers, CreateContainer), startContainer, wait,
// kill, removeContainer (unplug, release volumes). Each resource is recorded in the sandbox state
// before and after it is made.
import { fromJson } from '@bufbuild/protobuf';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { updateSandboxCpuset } from '../apply/cgroups.js';
import { CreateContainerRequestSchema } from '../gen/agent_pb.js';
import type { BlockDevice } from '../plan/devices.js';
import type { ContainerPlan } from '../plan/plan.js';
import { hotplugBlock, resizeVcpus, unplugBlock } from '../qemu/hotplug.js';
import { VolumeSyncs } from '../sync/volume-syncs.js';
import { crashPoint } from './crash-point.js';
import { mountContainerShares, unmountAll } from './host-mounts.js';
import { stepError, type LifecycleError, type LifecycleStep } from './errors.js';
import { processRef } from './process-ref.js';
import { replanWith } from './replan.js';
import { grantDisk } from './rootless-vmm.js';
import { readBundle } from './sandbox-inputs.js';
import type { Sandbox } from './sandbox.js';
import { StepFailure } from './state-recorder.js';

export interface AddContainerInput {
  readonly id: string;
  readonly bundle: string;
  readonly args?: readonly string[];
}

type Step<T = void> = Promise<Result<T, LifecycleError>>;

const failed =
  (sid: string, step: LifecycleStep) =>
  (e: { readonly message: string }): LifecycleError =>
    stepError(sid, step, e);

/**
 * A step body's Result as a ResultAsync; a state write that fails inside it (the recorder raises
 * StepFailure) becomes its Err as well.
 */
function settle<T>(
  sid: string,
  step: LifecycleStep,
  body: Step<T>,
): ResultAsync<T, LifecycleError> {
  const toError = (e: unknown): LifecycleError =>
    e instanceof StepFailure
      ? e.error
      : stepError(sid, step, e instanceof Error ? e.message : String(e));
  return ResultAsync.fromPromise(body, toError).andThen((r) => r);
}

function lap(sb: Sandbox, name: string, since: number): number {
  const now = performance.now();
  sb.timings[name] = (sb.timings[name] ?? 0) + (now - since);
  return now;
}

function syncsOf(sb: Sandbox): VolumeSyncs {
  sb.syncs ??= new VolumeSyncs({
    agent: { kind: 'unix', path: sb.vm.agentSocket },
    connection: sb.agent.connection,
    debounceMs: sb.options.syncDebounceMs ?? sb.config.config.runtime.copyWatchDebounceMs,
  });
  return sb.syncs;
}

/** Rootless: QEMU opens the image as the VMM user, through a bind in its VM dir. */
function openedBy(
  sb: Sandbox,
  d: BlockDevice,
  containerId: string,
): Result<BlockDevice, LifecycleError> {
  if (sb.vmmUser === null) return ok(d);
  return grantDisk(sb.recorder, sb.plan, sb.vmmUser, d, containerId).map((p) => ({
    ...d,
    pathOnHost: p,
  }));
}

async function hotplug(sb: Sandbox, c: ContainerPlan): Step {
  for (const d of c.blockDevices) {
    const entry = { id: d.id, containerId: c.id, pathOnHost: d.pathOnHost };
    sb.recorder.device(entry, 'intent');
    const opened = openedBy(sb, d, c.id);
    if (opened.isErr()) return err(opened.error);
    const plugged = await hotplugBlock(sb.vm.vm.qmp, opened.value, { timeoutMs: 20_000 });
    if (plugged.isErr()) return err(failed(sb.id, 'hotplug')(plugged.error));
    crashPoint('hotplug');
    sb.recorder.device(entry, 'done');
  }
  return ok(undefined);
}

/**
 * vCPUs up to the plan's count for this container (hot-plug, then OnlineCPUMem for the added
 * ones), then the sandbox cpuset. The present count comes from QEMU; if it cannot be read, the
 * add fails rather than guessing.
 */
async function resize(sb: Sandbox, c: ContainerPlan): Step {
  const qmp = sb.vm.vm.qmp;
  const fail = failed(sb.id, 'resize');
  const present = await qmp.execute<unknown[]>('query-cpus-fast');
  if (present.isErr())
    return err(fail({ message: `QMP query-cpus-fast: ${present.error.message}` }));
  const added = c.vcpusAfter - present.value.length;
  if (added > 0) {
    const plugged = await resizeVcpus(qmp, c.vcpusAfter);
    if (plugged.isErr()) return err(fail(plugged.error));
    // nb_cpus is the total to have online (kata-agent 4.1.0 `online_cpus`), not the added count.
    const online = await sb.agent.onlineCpuMem({ wait: true, nbCpus: c.vcpusAfter, cpuOnly: true });
    if (online.isErr()) return err(fail(online.error));
  }
  const cg = sb.plan.cgroups;
  const cpuset = await updateSandboxCpuset(sb.cgroups, sb.options.cgroupHost ?? {}, {
    cpus: cg.cpuset,
    mems: cg.mems,
  });
  return cpuset.mapErr(fail);
}

/** Each planned copy step through the sandbox's syncs; watched ones are recorded as watchers. */
async function copyVolumes(sb: Sandbox, c: ContainerPlan): Step {
  const owner = processRef(process.pid)!;
  for (const step of c.copies) {
    const entry = { source: step.source, containerId: c.id, guestPath: step.guestPath, owner };
    const at = sb.recorder.state.watchers.length;
    if (step.watched)
      sb.recorder.update((s) => ({
        ...s,
        watchers: [...s.watchers, { ...entry, phase: 'intent' }],
      }));
    const copied = await syncsOf(sb).acquire(c.id, step);
    if (copied.isErr()) return err(failed(sb.id, 'copy')(copied.error));
    const done = (s: typeof sb.state) => ({
      ...s,
      watchers: s.watchers.map((w, i) => (i === at ? { ...w, phase: 'done' as const } : w)),
    });
    if (step.watched) sb.recorder.update(done);
  }
  return ok(undefined);
}

/** The container's plan: the sandbox's own, or a new one re-planned into the sandbox and recorded. */
async function planned(sb: Sandbox, input: AddContainerInput): Step<ContainerPlan> {
  if (input.id === sb.id) return ok(sb.plan.containers[0]!);
  const bundle = await readBundle(sb.id, input.id, input.bundle, input.args);
  if (bundle.isErr()) return err(bundle.error);
  const next = replanWith(
    sb.plan,
    sb.config,
    sb.state.configPath,
    sb.bundles,
    bundle.value,
    sb.state.random,
  );
  if (next.isErr()) return err(next.error);
  const creating = {
    id: input.id,
    bundle: input.bundle,
    status: 'creating' as const,
    exitStatus: null,
  };
  sb.recorder.update((s) => ({
    ...s,
    random: next.value.random,
    containers: [...s.containers, creating],
  }));
  sb.bundles = [...sb.bundles, bundle.value];
  sb.plan = next.value.plan;
  return ok(next.value.container);
}

/**
 * Adds a container: the sandbox's own (id = sandbox id, already planned) or a new one (re-planned
 * with the sandbox's recorded random draws), then creates it in the guest. Every step is the
 * plan's: shared-dir mounts (none unless shared_fs = virtio-fs), hot-plugs, vCPUs, copies.
 */
export function addContainer(
  sb: Sandbox,
  input: AddContainerInput,
): ResultAsync<ContainerPlan, LifecycleError> {
  const run = async (): Step<ContainerPlan> => {
    let t = performance.now();
    const c = await planned(sb, input);
    if (c.isErr()) return c;
    t = lap(sb, 'plan', t);
    const shared = mountContainerShares(sb.recorder, c.value);
    if (shared.isErr()) return err(shared.error);
    const plugged = await hotplug(sb, c.value);
    if (plugged.isErr()) return err(plugged.error);
    const resized = await resize(sb, c.value);
    if (resized.isErr()) return err(resized.error);
    t = lap(sb, 'hotplug', t);
    const copied = await copyVolumes(sb, c.value);
    if (copied.isErr()) return err(copied.error);
    crashPoint('copy');
    t = lap(sb, 'copy', t);
    const created = await sb.agent.createContainer(
      fromJson(CreateContainerRequestSchema, c.value.createContainer),
    );
    if (created.isErr()) return err(failed(sb.id, 'create-container')(created.error));
    crashPoint('create-container');
    sb.recorder.container(c.value.id, (x) => ({ ...x, status: 'created' }));
    lap(sb, 'createContainer', t);
    return c;
  };
  return settle(sb.id, 'create-container', run());
}

export function startContainer(
  sb: Sandbox,
  containerId: string,
): ResultAsync<void, LifecycleError> {
  const t = performance.now();
  return sb.agent
    .startContainer(containerId)
    .mapErr((e) => stepError(sb.id, 'start-container', e))
    .map(() => {
      crashPoint('start-container');
      sb.recorder.container(containerId, (x) => ({ ...x, status: 'running' }));
      lap(sb, 'start', t);
      crashPoint('running');
    });
}

/** Waits for the container's init process; its exit status, or `vm-gone` if QEMU went away. */
export function wait(sb: Sandbox, containerId: string): ResultAsync<number, LifecycleError> {
  return sb.agent
    .waitProcess(containerId, '')
    .mapErr((e): LifecycleError =>
      sb.vmGone !== null
        ? { kind: 'vm-gone', sandboxId: sb.id, message: sb.vmGone }
        : stepError(sb.id, 'wait', e),
    )
    .map((status) => {
      sb.recorder.container(containerId, (x) => ({ ...x, status: 'stopped', exitStatus: status }));
      return status;
    });
}

/** Signals every process of the container (SignalProcess with an empty exec id). */
export function kill(
  sb: Sandbox,
  containerId: string,
  signal = 15,
): ResultAsync<void, LifecycleError> {
  return sb.agent.signalProcess(containerId, '', signal).mapErr((e) => stepError(sb.id, 'kill', e));
}

/** Streams the container's stdout and stderr to `out`/`err` until both end. */
export async function pumpOutput(
  sb: Sandbox,
  containerId: string,
  out: (b: Uint8Array) => void,
  errOut: (b: Uint8Array) => void,
): Promise<void> {
  const pump = async (
    read: (len: number) => ResultAsync<Uint8Array, unknown>,
    sink: (b: Uint8Array) => void,
  ) => {
    for (;;) {
      const chunk = await read(32 * 1024);
      if (chunk.isErr() || chunk.value.length === 0) return;
      sink(chunk.value);
    }
  };
  await Promise.all([
    pump((n) => sb.agent.readStdout(containerId, '', n), out),
    pump((n) => sb.agent.readStderr(containerId, '', n), errOut),
  ]);
}

/** Unplugs the container's devices, newest first (none once QEMU is gone). */
async function unplug(sb: Sandbox, c: ContainerPlan): Step {
  for (const d of [...c.blockDevices].reverse()) {
    if (!sb.vm.vm.running) break;
    const unplugged = await unplugBlock(sb.vm.vm.qmp, d.id);
    if (unplugged.isErr()) return err(failed(sb.id, 'remove-container')(unplugged.error));
    sb.recorder.device({ id: d.id, containerId: c.id, pathOnHost: d.pathOnHost }, 'removed');
  }
  return ok(undefined);
}

/**
 * The rootfs mounts are this container's alone; volume binds may be shared (refcounted by the
 * plan) and stay until the sandbox goes.
 */
function unmountRootfs(sb: Sandbox, c: ContainerPlan): Result<void, LifecycleError> {
  const targets = new Set<string>(
    [c.rootfs.hostMount?.target, c.rootfs.sharedBind?.hostPath].filter((x) => x !== undefined),
  );
  for (const m of [...sb.state.mounts].reverse()) {
    if (m.containerId !== c.id || m.phase === 'removed' || !targets.has(m.target)) continue;
    if (!unmountAll(m.target))
      return err(stepError(sb.id, 'remove-container', `cannot unmount ${m.target}`));
    const gone = (x: typeof m) => x.target === m.target && x.containerId === c.id;
    sb.recorder.update((s) => ({
      ...s,
      mounts: s.mounts.map((x) => (gone(x) ? { ...x, phase: 'removed' as const } : x)),
    }));
  }
  return ok(undefined);
}

/** RemoveContainer in the guest, then release its volumes, unplug its devices, unmount its rootfs. */
export function removeContainer(
  sb: Sandbox,
  containerId: string,
): ResultAsync<void, LifecycleError> {
  const run = async (): Step => {
    const c = sb.plan.containers.find((x) => x.id === containerId);
    if (c === undefined) {
      return err(
        stepError(sb.id, 'remove-container', `no container ${containerId} in the sandbox`),
      );
    }
    if (!sb.agent.closed) {
      const removed = await sb.agent.removeContainer(containerId, 10);
      if (removed.isErr()) return err(failed(sb.id, 'remove-container')(removed.error));
    }
    for (const step of c.copies) sb.syncs?.release(containerId, step);
    sb.recorder.update((s) => ({
      ...s,
      watchers: s.watchers.map((w) =>
        w.containerId === containerId ? { ...w, phase: 'removed' as const } : w,
      ),
    }));
    const unplugged = await unplug(sb, c);
    if (unplugged.isErr()) return unplugged;
    const unmounted = unmountRootfs(sb, c);
    if (unmounted.isErr()) return unmounted;
    sb.recorder.container(containerId, (x) => ({ ...x, status: 'removed' }));
    return ok(undefined);
  };
  return settle(sb.id, 'remove-container', run());
}
