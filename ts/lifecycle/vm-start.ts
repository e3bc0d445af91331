// Bringing a sandbox's VM up from its plan, each step recorded before and after it acts:
// cgroups → QEMU (+ virtiofsd) → VMM placed in the sandbox cgroup → agent dialed and healthy →
// CreateSandbox. Each step returns a Result; a failed state write (the recorder raises
// StepFailure) becomes startVm's Err too.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fromJson } from '@bufbuild/protobuf';
import { err, errAsync, ok, ResultAsync, type Result } from 'neverthrow';
import {
  createSandboxCgroups,
  intendedCgroupRecord,
  placeVmm,
  type CgroupHost,
  type CgroupRecord,
} from '../apply/cgroups.js';
import { connectAgent, type AgentClient, type AgentTarget } from '../agent/client.js';
import type { KataConfig } from '../config/kata-config.js';
import { CreateSandboxRequestSchema } from '../gen/agent_pb.js';
import type { ResourcePlan } from '../plan/plan.js';
import type { Accel } from '../qemu/cmdline.js';
import { DEFAULT_QEMU } from '../qemu/accel.js';
import { launchVm, type RunningVm } from '../qemu/launch.js';
import { configurePodNetwork, startPodNetwork } from '../network/vm-network.js';
import { rootlessLauncher, type RootlessUser } from '../rootless/index.js';
import { crashPoint } from './crash-point.js';
import { mountSharedDirs } from './host-mounts.js';
import { stepError, type LifecycleError, type LifecycleStep } from './errors.js';
import { processRef } from './process-ref.js';
import { makeVmmDir } from './rootless-vmm.js';
import { StateRecorder, StepFailure } from './state-recorder.js';

/** Launch settings that are not in the config (tests and the demo set them). */
export interface VmOptions {
  readonly accel: Accel;
  readonly cgroupHost: CgroupHost;
  /** Reach a host-side agent instead of the guest's (tests without a guest image). */
  readonly agentTarget?: AgentTarget;
  /** Start paused (tests without a guest: QMP and hot-plug only). */
  readonly paused?: boolean;
  readonly kernel?: string;
  readonly initrd?: string;
  readonly extraKernelParams?: string;
  /** Budget from QEMU start to a healthy agent. Default 120 s (TCG boots take seconds). */
  readonly bootTimeoutMs?: number;
  /** The runtime process placed in the sandbox cgroup with sandbox_cgroup_only (default: this one). */
  readonly runtimePid?: number;
  /** rootless = true: QEMU runs as this user, its sockets in the plan's jailer root (owned by it). */
  readonly vmmUser?: RootlessUser;
  /** The pod's network namespace (sandbox spec): its veths reach the guest through taps. */
  readonly podNetns?: string;
}

export interface StartedVm {
  readonly vm: RunningVm;
  readonly agent: AgentClient;
  readonly cgroups: CgroupRecord;
  /** Resolves with why, if QEMU exits before `stop()`. */
  readonly unexpectedExit: Promise<string>;
}

type Step<T> = Promise<Result<T, LifecycleError>>;

const failed =
  (sid: string, step: LifecycleStep) =>
  (e: { readonly message: string }): LifecycleError =>
    stepError(sid, step, e);

/** The record createSandboxCgroups will return, known before it acts (ts/apply/cgroups.ts refs). */
export function cgroupRecordOf(plan: ResourcePlan): CgroupRecord {
  const c = plan.cgroups;
  const sandbox = c.systemd
    ? ({ driver: 'systemd', slice: c.systemd.slice, unit: c.systemd.unit } as const)
    : ({ driver: 'cgroupfs', path: c.path } as const);
  const overhead = c.overheadSystemd
    ? ({ driver: 'systemd', slice: c.overheadSystemd.slice, unit: c.overheadSystemd.unit } as const)
    : c.overheadPath !== null
      ? ({ driver: 'cgroupfs', path: c.overheadPath } as const)
      : null;
  return {
    driver: c.driver,
    version: c.version,
    sandbox,
    overhead,
    vcpuPlacement: c.vcpuPlacement,
  };
}

async function startCgroups(
  rec: StateRecorder,
  plan: ResourcePlan,
  o: VmOptions,
): Step<CgroupRecord> {
  const sid = rec.state.sandboxId;
  const { controllers, systemd, root } = o.cgroupHost;
  const host = {
    ...(root !== undefined ? { root } : {}),
    ...(controllers ? { controllers: [...controllers] } : {}),
    ...(systemd ? { systemd: { ...systemd } } : {}),
  };
  rec.update((s) => ({
    ...s,
    cgroups: {
      record: intendedCgroupRecord(cgroupRecordOf(plan), o.cgroupHost),
      host,
      phase: 'intent',
    },
  }));
  const created = await createSandboxCgroups(
    plan.cgroups,
    o.cgroupHost,
    o.runtimePid ?? process.pid,
  );
  if (created.isErr()) return err(failed(sid, 'cgroups')(created.error));
  const record = created.value;
  crashPoint('cgroups');
  rec.update((s) => ({ ...s, cgroups: { record, host, phase: 'done' } }));
  return ok(record);
}

/** Places QEMU (and, for `threads` placement, its vCPU threads as QMP lists them) in the cgroups. */
async function placeInCgroups(
  sid: string,
  cgroups: CgroupRecord,
  vm: RunningVm,
  o: VmOptions,
): Step<void> {
  const fail = failed(sid, 'place-vmm');
  let vcpuTids: number[] = [];
  if (cgroups.vcpuPlacement === 'threads') {
    const cpus = await vm.vm.qmp.execute<{ 'thread-id': number }[]>('query-cpus-fast');
    if (cpus.isErr())
      return err(fail({ message: `QMP query-cpus-fast (vCPU threads): ${cpus.error.message}` }));
    vcpuTids = cpus.value.map((c) => c['thread-id']);
  }
  const placed = await placeVmm(cgroups, o.cgroupHost, { pid: vm.vm.pid, vcpuTids });
  return placed.mapErr(fail);
}

/** The VM's run dir, recorded before it is made (owned by the VMM user when rootless). */
function makeRunDir(
  rec: StateRecorder,
  runDir: string,
  user: RootlessUser | undefined,
): Result<void, LifecycleError> {
  if (user !== undefined) return makeVmmDir(rec, runDir);
  try {
    mkdirSync(runDir, { recursive: true });
    return ok(undefined);
  } catch (e) {
    return err(stepError(rec.state.sandboxId, 'vm', `mkdir ${runDir}: ${(e as Error).message}`));
  }
}

async function startQemu(
  rec: StateRecorder,
  plan: ResourcePlan,
  config: KataConfig,
  o: VmOptions,
  onExit: (why: string) => void,
): Step<RunningVm> {
  const sid = rec.state.sandboxId;
  const stateDir = rec.store.dir(sid)._unsafeUnwrap();
  const user = o.vmmUser;
  // Rootless: the QMP socket in `<jailer root>/qmp.sock` (runtime-rs), below the user's runtime dir.
  const runDir = user !== undefined ? plan.hostDirs.jailerRoot : path.join(stateDir, 'vm');
  rec.dir(runDir, 'intent');
  // virtio-fs: the plan's shared dirs, mounted first; virtiofsd exports their read-only view.
  if (plan.sharedDirs !== null) {
    const mounted = mountSharedDirs(rec, plan);
    if (mounted.isErr()) return err(mounted.error);
  }
  const sockets = {
    qmpSocket: path.join(runDir, 'qmp.sock'),
    agentSocket: path.join(runDir, 'agent.sock'),
    virtiofsSocket: path.join(runDir, 'vfs.sock'),
  };
  rec.update((s) => ({
    ...s,
    vm: { phase: 'intent', ...sockets, qemu: null, virtiofsd: null, accel: o.accel },
  }));
  const made = makeRunDir(rec, runDir, user);
  if (made.isErr()) return err(made.error);
  rec.dir(runDir, 'done');
  const h = config.hypervisor;
  const net = startPodNetwork(o.podNetns, o.accel, user !== undefined);
  if (net.isErr()) return err(failed(sid, 'vm')(net.error));
  const launched = await launchVm({
    plan,
    config: { ...h, path: h.path || DEFAULT_QEMU },
    runDir,
    ...(plan.sharedDirs !== null ? { sharedDir: plan.sharedDirs.ro } : {}),
    launch: {
      accel: o.accel,
      paused: o.paused ?? false,
      consoleLog: path.join(runDir, 'console.log'),
      ...(o.kernel !== undefined ? { kernel: o.kernel } : {}),
      ...(o.initrd !== undefined ? { initrd: o.initrd } : {}),
      ...(o.extraKernelParams !== undefined ? { extraKernelParams: o.extraKernelParams } : {}),
      ...(net.value !== null ? { netdevArgs: net.value.qemuArgs } : {}),
    },
    startTimeoutMs: 30_000,
    onUnexpectedExit: onExit,
    ...(user !== undefined
      ? { launcher: rootlessLauncher(user), virtiofsSocketOwner: { uid: user.uid, gid: user.gid } }
      : {}),
    ...(net.value !== null ? { launcher: net.value.launcher } : {}),
  });
  const withNet = net.value?.launched(launched) ?? launched;
  if (withNet.isErr()) return err(failed(sid, 'vm')(withNet.error));
  const vm = withNet.value;
  crashPoint('vm');
  const qemu = processRef(vm.vm.pid);
  const virtiofsd = vm.virtiofsd?.pid !== undefined ? processRef(vm.virtiofsd.pid) : null;
  rec.update((s) => ({ ...s, vm: { phase: 'done', ...sockets, qemu, virtiofsd, accel: o.accel } }));
  return ok(vm);
}

async function dialAgent(
  rec: StateRecorder,
  vm: RunningVm,
  o: VmOptions,
  requestTimeoutMs: number,
): Step<AgentClient> {
  const fail = failed(rec.state.sandboxId, 'agent');
  const budget = o.bootTimeoutMs ?? 120_000;
  const target: AgentTarget = o.agentTarget ?? { kind: 'unix', path: vm.agentSocket };
  // The config's request_timeout_ms bounds every later request (runtime-rs default 30 s).
  const agent = await connectAgent(target, {
    dialTimeoutMs: budget,
    healthTimeoutMs: budget,
    requestTimeoutMs,
  });
  if (agent.isErr()) return err(fail(agent.error));
  // Over virtio-serial the dial succeeds as soon as QEMU listens; the first answer means the
  // guest booted and its agent serves.
  const health = await agent.value.check();
  if (health.isErr()) {
    agent.value.close();
    return err(fail({ message: `agent health check: ${health.error.message}` }));
  }
  crashPoint('agent');
  return ok(agent.value);
}

/** Placement, agent, CreateSandbox on a started VM; `lap` records `boot` and `createSandbox`. */
async function bringUp(
  rec: StateRecorder,
  plan: ResourcePlan,
  vm: RunningVm,
  cgroups: CgroupRecord,
  o: VmOptions,
  lap: (name: string) => void,
  requestTimeoutMs: number,
): Step<AgentClient> {
  const sid = rec.state.sandboxId;
  const placed = await placeInCgroups(sid, cgroups, vm, o);
  if (placed.isErr()) return err(placed.error);
  crashPoint('place-vmm');
  const agent = await dialAgent(rec, vm, o, requestTimeoutMs);
  if (agent.isErr()) return agent;
  lap('boot');
  // Kata tells the guest its network before CreateSandbox (kata_agent.go startSandbox).
  const netUp = await configurePodNetwork(vm, agent.value);
  if (netUp.isErr()) {
    agent.value.close();
    return err(failed(sid, 'create-sandbox')(netUp.error));
  }
  const created = await agent.value.createSandbox(
    fromJson(CreateSandboxRequestSchema, plan.createSandbox),
  );
  if (created.isErr()) {
    agent.value.close();
    return err(failed(sid, 'create-sandbox')(created.error));
  }
  crashPoint('create-sandbox');
  lap('createSandbox');
  return agent;
}

/**
 * Cgroups, VM, placement, agent, CreateSandbox; `timings` gets `cgroups`, `boot` and
 * `createSandbox` ms. A failure after QEMU started stops it; the rest is cleanup's (recorded).
 */
export function startVm(
  rec: StateRecorder,
  plan: ResourcePlan,
  config: KataConfig,
  o: VmOptions,
  timings: Record<string, number>,
): ResultAsync<StartedVm, LifecycleError> {
  const sid = rec.state.sandboxId;
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = (timings[name] ?? 0) + (now - t);
    t = now;
  };
  let started: RunningVm | null = null;
  const run = async (): Step<StartedVm> => {
    const cgroups = await startCgroups(rec, plan, o);
    if (cgroups.isErr()) return err(cgroups.error);
    lap('cgroups');
    let onExit: (why: string) => void = () => {};
    const unexpectedExit = new Promise<string>((resolve) => (onExit = resolve));
    const vm = await startQemu(rec, plan, config, o, (why) => onExit(why));
    if (vm.isErr()) return err(vm.error);
    started = vm.value;
    const agent = await bringUp(
      rec,
      plan,
      vm.value,
      cgroups.value,
      o,
      lap,
      config.agent.requestTimeoutMs,
    );
    if (agent.isErr()) return err(agent.error);
    return ok({ vm: vm.value, agent: agent.value, cgroups: cgroups.value, unexpectedExit });
  };
  const toError = (e: unknown): LifecycleError =>
    e instanceof StepFailure
      ? e.error
      : stepError(sid, 'vm', e instanceof Error ? `internal: ${e.message}` : String(e));
  return ResultAsync.fromPromise(run(), toError)
    .andThen((r) => r)
    .orElse((e) => {
      const vm = started as RunningVm | null;
      return ResultAsync.fromSafePromise(vm !== null ? vm.stop(2_000) : Promise.resolve()).andThen(
        () => errAsync<StartedVm, LifecycleError>(e),
      );
    });
}
