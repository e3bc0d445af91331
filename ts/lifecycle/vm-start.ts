// Bringing a sandbox's VM up from its plan, each step recorded before and after it acts:
// cgroups → QEMU (+ virtiofsd) → VMM placed in the sandbox cgroup → agent dialed and healthy →
// CreateSandbox. Steps throw StepFailure; ts/lifecycle/sandbox.ts turns that into an Err.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fromJson } from '@bufbuild/protobuf';
import { createSandboxCgroups, placeVmm, type CgroupHost, type CgroupRecord } from '../apply/cgroups.js';
import { connectAgent, type AgentClient, type AgentTarget } from '../agent/client.js';
import type { KataConfig } from '../config/kata-config.js';
import { CreateSandboxRequestSchema } from '../gen/agent_pb.js';
import type { ResourcePlan } from '../plan/plan.js';
import type { Accel } from '../qemu/cmdline.js';
import { DEFAULT_QEMU } from '../qemu/accel.js';
import { launchVm, type RunningVm } from '../qemu/launch.js';
import { rootlessLauncher, type RootlessUser } from '../rootless/index.js';
import { crashPoint } from './crash-point.js';
import { mountSharedDirs } from './host-mounts.js';
import { stepError, type LifecycleStep } from './errors.js';
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
}

export interface StartedVm {
  readonly vm: RunningVm;
  readonly agent: AgentClient;
  readonly cgroups: CgroupRecord;
  /** Resolves with why, if QEMU exits before `stop()`. */
  readonly unexpectedExit: Promise<string>;
}

const fail = (sid: string, step: LifecycleStep) => (e: { message: string }) => {
  throw new StepFailure(stepError(sid, step, e));
};

/** The record createSandboxCgroups will return, known before it acts (ts/apply/cgroups.ts refs). */
export function cgroupRecordOf(plan: ResourcePlan): CgroupRecord {
  const c = plan.cgroups;
  const sandbox = c.systemd ? ({ driver: 'systemd', slice: c.systemd.slice, unit: c.systemd.unit } as const) : ({ driver: 'cgroupfs', path: c.path } as const);
  const overhead = c.overheadSystemd
    ? ({ driver: 'systemd', slice: c.overheadSystemd.slice, unit: c.overheadSystemd.unit } as const)
    : c.overheadPath !== null
      ? ({ driver: 'cgroupfs', path: c.overheadPath } as const)
      : null;
  return { driver: c.driver, version: c.version, sandbox, overhead, vcpuPlacement: c.vcpuPlacement };
}

async function startCgroups(rec: StateRecorder, plan: ResourcePlan, o: VmOptions): Promise<CgroupRecord> {
  const sid = rec.state.sandboxId;
  const { controllers, systemd, root } = o.cgroupHost;
  const host = { ...(root !== undefined ? { root } : {}), ...(controllers ? { controllers: [...controllers] } : {}), ...(systemd ? { systemd: { ...systemd } } : {}) };
  rec.update((s) => ({ ...s, cgroups: { record: cgroupRecordOf(plan), host, phase: 'intent' } }));
  const record = (await createSandboxCgroups(plan.cgroups, o.cgroupHost, o.runtimePid ?? process.pid)).match((r) => r, fail(sid, 'cgroups'));
  crashPoint('cgroups');
  rec.update((s) => ({ ...s, cgroups: { record, host, phase: 'done' } }));
  return record;
}

/** vCPU thread ids from QMP (for `threads` placement). */
async function vcpuThreads(vm: RunningVm): Promise<number[]> {
  const cpus = await vm.vm.qmp.execute<{ 'thread-id': number }[]>('query-cpus-fast');
  return cpus.isOk() ? cpus.value.map((c) => c['thread-id']) : [];
}

async function startQemu(rec: StateRecorder, plan: ResourcePlan, config: KataConfig, o: VmOptions, onExit: (why: string) => void): Promise<RunningVm> {
  const sid = rec.state.sandboxId;
  const stateDir = rec.store.dir(sid)._unsafeUnwrap();
  const user = o.vmmUser;
  // Rootless: the QMP socket in `<jailer root>/qmp.sock` (runtime-rs), below the user's runtime dir.
  const runDir = user !== undefined ? plan.hostDirs.jailerRoot : path.join(stateDir, 'vm');
  // virtiofsd exports the read-only view of the shared dir (ts/lifecycle/host-mounts.ts).
  const sharedDir = plan.hostDirs.sharedRo;
  rec.dir(runDir, 'intent');
  if (config.hypervisor.sharedFs === 'virtio-fs') mountSharedDirs(rec, plan);
  const sockets = { qmpSocket: path.join(runDir, 'qmp.sock'), agentSocket: path.join(runDir, 'agent.sock'), virtiofsSocket: path.join(runDir, 'vfs.sock') };
  rec.update((s) => ({ ...s, vm: { phase: 'intent', ...sockets, qemu: null, virtiofsd: null, accel: o.accel } }));
  if (user !== undefined) makeVmmDir(rec, runDir);
  else mkdirSync(runDir, { recursive: true });
  rec.dir(runDir, 'done');
  const h = config.hypervisor;
  const launched = await launchVm({
    plan,
    config: { ...h, path: h.path || DEFAULT_QEMU },
    runDir,
    sharedDir,
    launch: {
      accel: o.accel,
      paused: o.paused ?? false,
      consoleLog: path.join(runDir, 'console.log'),
      ...(o.kernel !== undefined ? { kernel: o.kernel } : {}),
      ...(o.initrd !== undefined ? { initrd: o.initrd } : {}),
      ...(o.extraKernelParams !== undefined ? { extraKernelParams: o.extraKernelParams } : {}),
    },
    startTimeoutMs: 30_000,
    onUnexpectedExit: onExit,
    ...(user !== undefined ? { launcher: rootlessLauncher(user), virtiofsSocketOwner: { uid: user.uid, gid: user.gid } } : {}),
  });
  const vm = launched.match((v) => v, fail(sid, 'vm'));
  crashPoint('vm');
  const qemu = processRef(vm.vm.pid);
  const virtiofsd = vm.virtiofsd?.pid !== undefined ? processRef(vm.virtiofsd.pid) : null;
  rec.update((s) => ({ ...s, vm: { phase: 'done', ...sockets, qemu, virtiofsd, accel: o.accel } }));
  return vm;
}

async function dialAgent(rec: StateRecorder, vm: RunningVm, o: VmOptions): Promise<AgentClient> {
  const sid = rec.state.sandboxId;
  const budget = o.bootTimeoutMs ?? 120_000;
  const target: AgentTarget = o.agentTarget ?? { kind: 'unix', path: vm.agentSocket };
  const agent = (await connectAgent(target, { dialTimeoutMs: budget, healthTimeoutMs: budget })).match((a) => a, fail(sid, 'agent'));
  // Over virtio-serial the dial succeeds as soon as QEMU listens; the first answer means the
  // guest booted and its agent serves.
  const health = await agent.check();
  if (health.isErr()) {
    agent.close();
    fail(sid, 'agent')({ message: `agent health check: ${health.error.message}` });
  }
  crashPoint('agent');
  return agent;
}

/** Cgroups, VM, placement, agent, CreateSandbox; `timings` gets `cgroups`, `boot` and `createSandbox` ms. */
export async function startVm(
  rec: StateRecorder,
  plan: ResourcePlan,
  config: KataConfig,
  o: VmOptions,
  timings: Record<string, number>,
): Promise<StartedVm> {
  const sid = rec.state.sandboxId;
  let t = performance.now();
  const lap = (name: string) => {
    const now = performance.now();
    timings[name] = (timings[name] ?? 0) + (now - t);
    t = now;
  };
  const cgroups = await startCgroups(rec, plan, o);
  lap('cgroups');
  let onExit: (why: string) => void = () => {};
  const unexpectedExit = new Promise<string>((resolve) => (onExit = resolve));
  const vm = await startQemu(rec, plan, config, o, (why) => onExit(why));
  try {
    const tids = cgroups.vcpuPlacement === 'threads' ? await vcpuThreads(vm) : [];
    (await placeVmm(cgroups, o.cgroupHost, { pid: vm.vm.pid, vcpuTids: tids })).match(() => undefined, fail(sid, 'place-vmm'));
    crashPoint('place-vmm');
    const agent = await dialAgent(rec, vm, o);
    lap('boot');
    const request = fromJson(CreateSandboxRequestSchema, plan.createSandbox);
    const created = await agent.createSandbox(request);
    if (created.isErr()) {
      agent.close();
      fail(sid, 'create-sandbox')(created.error);
    }
    crashPoint('create-sandbox');
    lap('createSandbox');
    return { vm, agent, cgroups, unexpectedExit };
  } catch (e) {
    await vm.stop(2_000);
    throw e;
  }
}
