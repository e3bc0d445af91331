// Containers of a running sandbox: addContainer (hot-plug block devices, vCPU resize +
// OnlineCPUMem, cgroup cpuset, copy volumes + watchers, CreateContainer), startContainer, wait,
// kill, removeContainer (unplug, release volumes). Each resource is recorded in the sandbox state
// before and after it is made.
import path from 'node:path';
import { fromJson } from '@bufbuild/protobuf';
import { ResultAsync } from 'neverthrow';
import { updateSandboxCpuset } from '../apply/cgroups.js';
import { CreateContainerRequestSchema } from '../gen/agent_pb.js';
import type { ContainerPlan } from '../plan/plan.js';
import { hotplugBlock, resizeVcpus, unplugBlock } from '../qemu/hotplug.js';
import { VolumeManager } from '../plan/volume-manager.js';
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

const fail = (sid: string, step: LifecycleStep) => (e: { message: string }): never => {
  throw new StepFailure(stepError(sid, step, e));
};

const toError = (sid: string, step: LifecycleStep) => (e: unknown): LifecycleError =>
  e instanceof StepFailure ? e.error : stepError(sid, step, e instanceof Error ? e.message : String(e));

function lap(sb: Sandbox, name: string, since: number): number {
  const now = performance.now();
  sb.timings[name] = (sb.timings[name] ?? 0) + (now - since);
  return now;
}

/** The 16 hex the planner put in a copy's guest path (`<cid>-<hex>-<name>`), replayed into VolumeSyncs. */
function plannedHex(containerId: string, guestPath: string): string {
  return path.posix.basename(guestPath).slice(containerId.length + 1, containerId.length + 17);
}

function syncsOf(sb: Sandbox): VolumeSyncs {
  sb.syncs ??= new VolumeSyncs(new VolumeManager(), {
    agent: { kind: 'unix', path: sb.vm.agentSocket },
    connection: sb.agent.connection,
    debounceMs: sb.options.syncDebounceMs ?? sb.config.config.runtime.copyWatchDebounceMs,
  });
  return sb.syncs;
}

async function hotplug(sb: Sandbox, c: ContainerPlan): Promise<void> {
  for (const d of c.blockDevices) {
    const entry = { id: d.id, containerId: c.id, pathOnHost: d.pathOnHost };
    sb.recorder.device(entry, 'intent');
    // Rootless: QEMU opens the image as the VMM user, through a bind in its VM dir.
    const opened = sb.vmmUser !== null ? { ...d, pathOnHost: grantDisk(sb.recorder, sb.plan, sb.vmmUser, d, c.id) } : d;
    (await hotplugBlock(sb.vm.vm.qmp, opened, { timeoutMs: 20_000 })).match(() => undefined, fail(sb.id, 'hotplug'));
    crashPoint('hotplug');
    sb.recorder.device(entry, 'done');
  }
}

async function resize(sb: Sandbox, c: ContainerPlan): Promise<void> {
  const qmp = sb.vm.vm.qmp;
  const current = await qmp.execute<unknown[]>('query-cpus-fast');
  const present = current.isOk() ? current.value.length : c.vcpusAfter;
  if (c.vcpusAfter > present) {
    (await resizeVcpus(qmp, c.vcpusAfter)).match(() => undefined, fail(sb.id, 'resize'));
    (await sb.agent.onlineCpuMem({ wait: true, nbCpus: c.vcpusAfter - present, cpuOnly: true })).match(() => undefined, fail(sb.id, 'resize'));
  }
  const cg = sb.plan.cgroups;
  (await updateSandboxCpuset(sb.cgroups, sb.options.cgroupHost ?? {}, { cpus: cg.cpuset, mems: cg.mems })).match(() => undefined, fail(sb.id, 'resize'));
}

async function copyVolumes(sb: Sandbox, c: ContainerPlan): Promise<void> {
  const owner = processRef(process.pid)!;
  for (const step of c.copies) {
    const entry = { source: step.hostPath, containerId: c.id, guestPath: step.guestPath, owner };
    const at = sb.recorder.state.watchers.length;
    if (step.watched) sb.recorder.update((s) => ({ ...s, watchers: [...s.watchers, { ...entry, phase: 'intent' }] }));
    const hex = plannedHex(c.id, step.guestPath);
    const mount = path.posix.basename(step.guestPath).slice(c.id.length + 18);
    (await syncsOf(sb).acquire(step.hostPath, c.id, `/${mount}`, () => hex, step.watched)).match(() => undefined, fail(sb.id, 'copy'));
    if (step.watched) sb.recorder.update((s) => ({ ...s, watchers: s.watchers.map((w, i) => (i === at ? { ...w, phase: 'done' as const } : w)) }));
  }
}

/**
 * Adds a container: the sandbox's own (id = sandbox id, already planned) or a new one (re-planned
 * with the sandbox's recorded random draws), then creates it in the guest.
 */
export function addContainer(sb: Sandbox, input: AddContainerInput): ResultAsync<ContainerPlan, LifecycleError> {
  const run = async (): Promise<ContainerPlan> => {
    let t = performance.now();
    let c: ContainerPlan;
    if (input.id === sb.id) {
      c = sb.plan.containers[0]!;
    } else {
      const bundle = (await readBundle(sb.id, input.id, input.bundle, input.args)).match((b) => b, (e) => { throw new StepFailure(e); });
      const next = replanWith(sb.plan, sb.config, sb.state.configPath, sb.bundles, bundle, sb.state.random).match((r) => r, (e) => { throw new StepFailure(e); });
      sb.recorder.update((s) => ({ ...s, random: next.random, containers: [...s.containers, { id: input.id, bundle: input.bundle, status: 'creating', exitStatus: null }] }));
      sb.bundles = [...sb.bundles, bundle];
      sb.plan = next.plan;
      c = next.container;
    }
    t = lap(sb, 'plan', t);
    if (sb.config.config.hypervisor.sharedFs === 'virtio-fs') mountContainerShares(sb.recorder, c);
    await hotplug(sb, c);
    await resize(sb, c);
    t = lap(sb, 'hotplug', t);
    await copyVolumes(sb, c);
    crashPoint('copy');
    t = lap(sb, 'copy', t);
    const created = await sb.agent.createContainer(fromJson(CreateContainerRequestSchema, c.createContainer));
    created.match(() => undefined, fail(sb.id, 'create-container'));
    crashPoint('create-container');
    sb.recorder.container(c.id, (x) => ({ ...x, status: 'created' }));
    lap(sb, 'createContainer', t);
    return c;
  };
  return ResultAsync.fromPromise(run(), toError(sb.id, 'create-container'));
}

export function startContainer(sb: Sandbox, containerId: string): ResultAsync<void, LifecycleError> {
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
      sb.vmGone !== null ? { kind: 'vm-gone', sandboxId: sb.id, message: sb.vmGone } : stepError(sb.id, 'wait', e),
    )
    .map((status) => {
      sb.recorder.container(containerId, (x) => ({ ...x, status: 'stopped', exitStatus: status }));
      return status;
    });
}

/** Signals every process of the container (SignalProcess with an empty exec id). */
export function kill(sb: Sandbox, containerId: string, signal = 15): ResultAsync<void, LifecycleError> {
  return sb.agent.signalProcess(containerId, '', signal).mapErr((e) => stepError(sb.id, 'kill', e));
}

/** Streams the container's stdout and stderr to `out`/`err` until both end. */
export async function pumpOutput(sb: Sandbox, containerId: string, out: (b: Uint8Array) => void, errOut: (b: Uint8Array) => void): Promise<void> {
  const pump = async (read: (len: number) => ResultAsync<Uint8Array, unknown>, sink: (b: Uint8Array) => void) => {
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

/** RemoveContainer in the guest, then unplug its devices and release its volumes. */
export function removeContainer(sb: Sandbox, containerId: string): ResultAsync<void, LifecycleError> {
  const run = async () => {
    if (!sb.agent.closed) (await sb.agent.removeContainer(containerId, 10)).match(() => undefined, fail(sb.id, 'remove-container'));
    const c = sb.plan.containers.find((x) => x.id === containerId);
    for (const step of c?.copies ?? []) sb.syncs?.release(step.hostPath, containerId);
    sb.recorder.update((s) => ({
      ...s,
      watchers: s.watchers.map((w) => (w.containerId === containerId ? { ...w, phase: 'removed' as const } : w)),
    }));
    for (const d of [...(c?.blockDevices ?? [])].reverse()) {
      if (!sb.vm.vm.running) break;
      (await unplugBlock(sb.vm.vm.qmp, d.id)).match(() => undefined, fail(sb.id, 'remove-container'));
      sb.recorder.device({ id: d.id, containerId, pathOnHost: d.pathOnHost }, 'removed');
    }
    // The rootfs mounts are this container's alone; volume binds may be shared (refcounted by
    // the plan) and stay until the sandbox goes.
    const rootfsTargets = new Set<string>([c?.rootfs.hostMount?.target, c?.rootfs.sharedBind?.hostPath].filter((x) => x !== undefined));
    for (const m of [...sb.state.mounts].reverse()) {
      if (m.containerId !== containerId || m.phase === 'removed' || !rootfsTargets.has(m.target)) continue;
      if (!unmountAll(m.target)) fail(sb.id, 'remove-container')({ message: `cannot unmount ${m.target}` });
      const gone = (x: typeof m) => x.target === m.target && x.containerId === containerId;
      sb.recorder.update((s) => ({ ...s, mounts: s.mounts.map((x) => (gone(x) ? { ...x, phase: 'removed' as const } : x)) }));
    }
    sb.recorder.container(containerId, (x) => ({ ...x, status: 'removed' }));
  };
  return ResultAsync.fromPromise(run(), toError(sb.id, 'remove-container'));
}
