// The sandbox lifecycle a shim calls: createSandbox (plan → dirs → cgroups → VM → agent →
// CreateSandbox), stopSandbox and deleteSandbox. Containers: ts/lifecycle/container.ts. Every
// resource is recorded in the sandbox state before and after it is made (ts/lifecycle/state-*.ts),
// and a failed create undoes itself with the same cleanup a fresh process would run.
import { err, errAsync, ok, ResultAsync, type Result } from 'neverthrow';
import type { AgentClient } from '../agent/client.js';
import type { CgroupHost, CgroupRecord } from '../apply/cgroups.js';
import type { ParsedConfig } from '../config/parse-config.js';
import type { BundleInput, ResourcePlan } from '../plan/plan.js';
import { plan as planSandbox } from '../plan/plan.js';
import type { RandomHex } from '../plan/volumes-paths.js';
import { formatPlanError, type PlanError } from '../errors.js';
import { probeAccel } from '../qemu/accel.js';
import type { Accel } from '../qemu/cmdline.js';
import type { RunningVm } from '../qemu/launch.js';
import type { RootlessUser } from '../rootless/index.js';
import type { VolumeSyncs } from '../sync/volume-syncs.js';
import { cleanupSandbox, type CleanupReport } from './cleanup.js';
import { crashPoint } from './crash-point.js';
import { stepError, type LifecycleError } from './errors.js';
import { processRef } from './process-ref.js';
import { unsupportedConfig, writeInitdataImage } from './host-files.js';
import {
  createVmmUser,
  prepareVmmDirs,
  rootlessPreflight,
  rootlessRequested,
  VALIDATION_ROOTLESS_DIR,
  vmmAccel,
} from './rootless-vmm.js';
import { hostFactsFor, readBundle, readConfig, replayingRandom } from './sandbox-inputs.js';
import { STATE_SCHEMA_VERSION, type SandboxState } from './state-schema.js';
import { StateRecorder, StepFailure } from './state-recorder.js';
import { StateStore, stateRoot } from './state-store.js';
import { startVm, type VmOptions } from './vm-start.js';
import { podNetnsOption } from '../network/vm-network.js';

export interface SandboxOptions extends Partial<Omit<VmOptions, 'accel' | 'cgroupHost'>> {
  /** Default: KATA_TS_STATE_ROOT, else /run/kata-ts. */
  readonly stateRoot?: string;
  /** Default: probed (KATA_TS_QEMU_ACCEL forces it). */
  readonly accel?: Accel;
  readonly cgroupHost?: CgroupHost;
  /** Called when a slow step starts and ends (the CLI shows it on a terminal). */
  readonly onProgress?: (step: string, phase: 'start' | 'done') => void;
  /** Debounce of live-synced copy volumes (default: config `copy_watch_debounce_ms`). */
  readonly syncDebounceMs?: number;
}

export interface CreateSandboxInput {
  readonly sandboxId: string;
  readonly configPath: string;
  /** The sandbox's bundle (its own container; `kata-ts run`'s BUNDLE). */
  readonly bundle: string;
  /** Replaces `process.args` of the bundle's spec. */
  readonly args?: readonly string[];
}

/** A sandbox this process owns: its VM, agent connection and watchers. */
export class Sandbox {
  /** ms per phase: plan, cgroups, boot, createSandbox, hotplug, copy, createContainer, start, teardown. */
  readonly timings: Record<string, number> = {};
  syncs: VolumeSyncs | null = null;
  /** Why the VM is gone, once it went away unexpectedly. */
  vmGone: string | null = null;
  /** The user QEMU runs as (rootless = true); removed with the sandbox. */
  vmmUser: RootlessUser | null = null;

  constructor(
    readonly recorder: StateRecorder,
    readonly config: ParsedConfig,
    readonly options: SandboxOptions & { readonly accel: Accel },
    public bundles: BundleInput[],
    public plan: ResourcePlan,
    readonly vm: RunningVm,
    readonly agent: AgentClient,
    readonly cgroups: CgroupRecord,
  ) {}

  get id(): string {
    return this.recorder.state.sandboxId;
  }

  get state(): SandboxState {
    return this.recorder.state;
  }
}

function initialState(input: CreateSandboxInput): SandboxState {
  return {
    schemaVersion: STATE_SCHEMA_VERSION,
    sandboxId: input.sandboxId,
    status: 'creating',
    error: null,
    createdAt: new Date().toISOString(),
    configPath: input.configPath,
    sandboxBundle: input.bundle,
    random: [],
    owner: processRef(process.pid),
    dirs: [],
    rootlessUser: null,
    cgroups: null,
    vm: null,
    mounts: [],
    devices: [],
    watchers: [],
    containers: [
      { id: input.sandboxId, bundle: input.bundle, status: 'creating', exitStatus: null },
    ],
  };
}

type Step<T> = Promise<Result<T, LifecycleError>>;

const toError =
  (sid: string) =>
  (e: unknown): LifecycleError =>
    e instanceof StepFailure
      ? e.error
      : stepError(sid, 'cleanup', e instanceof Error ? `internal: ${e.message}` : String(e));

const planFailed = (sid: string, e: PlanError): LifecycleError => ({
  kind: 'input',
  sandboxId: sid,
  lines: formatPlanError(e),
  message: 'plan',
});

/** What createSandbox knows before it acts: inputs read and checked, the sandbox planned. */
interface Prepared {
  readonly store: StateStore;
  readonly config: ParsedConfig;
  readonly bundle: BundleInput;
  readonly rootless: boolean;
  readonly plan: ResourcePlan;
  readonly planMs: number;
  /** The planner's random draws, recorded so a re-plan replays them. */
  readonly drawn: string[];
  readonly planWith: (
    rootlessDir: string | undefined,
    random: RandomHex,
  ) => Result<ResourcePlan, PlanError>;
}

/** Reads and checks the config and bundle and plans the sandbox; nothing on the machine changes. */
async function prepare(input: CreateSandboxInput, options: SandboxOptions): Step<Prepared> {
  const sid = input.sandboxId;
  const root = stateRoot(options.stateRoot);
  if (root.isErr()) return err({ ...root.error, sandboxId: sid });
  const store = new StateStore(root.value);
  const t0 = performance.now();
  const config = await readConfig(sid, input.configPath);
  if (config.isErr()) return err(config.error);
  const unsupported = unsupportedConfig(sid, input.configPath, config.value.config);
  if (unsupported !== null) return err(unsupported);
  const bundle = await readBundle(sid, sid, input.bundle, input.args);
  if (bundle.isErr()) return err(bundle.error);
  const rootless = rootlessRequested(config.value.config, bundle.value);
  const refused = rootless ? rootlessPreflight(sid) : null;
  if (refused !== null) return err(refused);
  const planWith = (rootlessDir: string | undefined, random: RandomHex) =>
    planSandbox({
      config: config.value.config,
      configSource: input.configPath,
      sandbox: bundle.value,
      containers: [],
      host: {
        ...hostFactsFor([bundle.value], config.value),
        ...(rootlessDir !== undefined ? { rootlessDir } : {}),
      },
      random,
    });
  const drawn: string[] = [];
  // Rootless: validated with a stand-in dir first, so bad input never creates a user.
  const planned = planWith(
    rootless ? VALIDATION_ROOTLESS_DIR : undefined,
    replayingRandom([], drawn),
  );
  if (planned.isErr()) return err(planFailed(sid, planned.error));
  if (store.read(sid).isOk())
    return err({
      kind: 'exists',
      sandboxId: sid,
      message: `sandbox ${sid} exists (state in ${store.dir(sid)._unsafeUnwrap()})`,
    });
  const planMs = performance.now() - t0;
  return ok({
    store,
    config: config.value,
    bundle: bundle.value,
    rootless,
    plan: planned.value,
    planMs,
    drawn,
    planWith,
  });
}

/** Rootless: the VMM user, the plan again with its runtime dir, and its dirs. */
function rootlessSetup(
  rec: StateRecorder,
  p: Prepared,
  accel: Accel,
): Result<{ plan: ResourcePlan; vmmUser: RootlessUser; accel: Accel }, LifecycleError> {
  return createVmmUser(rec).andThen((vmmUser) => {
    const again: string[] = [];
    const replanned = p.planWith(vmmUser.runtimeDir, replayingRandom(p.drawn, again));
    if (replanned.isErr()) return err(planFailed(rec.state.sandboxId, replanned.error));
    rec.update((s) => ({ ...s, random: again }));
    return prepareVmmDirs(rec, replanned.value).map(() => ({
      plan: replanned.value,
      vmmUser,
      accel: vmmAccel(accel, vmmUser).accel,
    }));
  });
}

/** Everything that acts, each step recorded; the caller cleans up after an Err. */
async function bringUp(
  rec: StateRecorder,
  p: Prepared,
  options: SandboxOptions,
  probed: Accel,
): Step<Sandbox> {
  let plan = p.plan;
  let accel = probed;
  let vmmUser: RootlessUser | null = null;
  if (p.rootless) {
    const setup = rootlessSetup(rec, p, accel);
    if (setup.isErr()) return err(setup.error);
    ({ plan, vmmUser, accel } = setup.value);
  }
  const vmOptions: VmOptions = {
    ...options,
    accel,
    cgroupHost: options.cgroupHost ?? {},
    ...(vmmUser !== null ? { vmmUser } : {}),
    ...podNetnsOption(p.bundle.spec),
  };
  const written = writeInitdataImage(rec, plan, vmmUser);
  if (written.isErr()) return err(written.error);
  crashPoint('dirs');
  const timings: Record<string, number> = { plan: p.planMs };
  options.onProgress?.(`booting VM (${accel})`, 'start');
  const started = await startVm(rec, plan, p.config.config, vmOptions, timings);
  options.onProgress?.(`booting VM (${accel})`, 'done');
  if (started.isErr()) return err(started.error);
  rec.update((s) => ({ ...s, status: 'ready' }));
  const { vm, agent, cgroups, unexpectedExit } = started.value;
  const sb = new Sandbox(
    rec,
    p.config,
    { ...options, accel },
    [p.bundle],
    plan,
    vm,
    agent,
    cgroups,
  );
  sb.vmmUser = vmmUser;
  Object.assign(sb.timings, timings);
  void unexpectedExit.then((why) => markVmGone(sb, why));
  return ok(sb);
}

/** Plans the sandbox and brings it up; on failure everything made so far is removed again. */
export function createSandbox(
  input: CreateSandboxInput,
  options: SandboxOptions = {},
): ResultAsync<Sandbox, LifecycleError> {
  const sid = input.sandboxId;
  const run = async (): Step<Sandbox> => {
    const prepared = await prepare(input, options);
    if (prepared.isErr()) return err(prepared.error);
    const { store } = prepared.value;
    const rec = new StateRecorder(store, { ...initialState(input), random: prepared.value.drawn });
    rec.update((s) => s);
    rec.dir(store.dir(sid)._unsafeUnwrap(), 'done');
    const accel = options.accel ?? (await probeAccel()).accel;
    // From here on a failure runs cleanup, which removes whatever the state recorded.
    const up = await ResultAsync.fromPromise(
      bringUp(rec, prepared.value, options, accel),
      toError(sid),
    ).andThen((r) => r);
    if (up.isOk()) return up;
    // Best effort: cleanup removes the state either way, and the cause is what the caller needs.
    void rec.tryUpdate((s) => ({ ...s, status: 'failed', error: up.error.message }));
    await cleanupSandbox(store, sid);
    return up;
  };
  return ResultAsync.fromPromise(run(), toError(sid)).andThen((r) => r);
}

/** QEMU exited under the sandbox: record it, and fail pending agent calls. */
function markVmGone(sb: Sandbox, why: string): void {
  sb.vmGone = why;
  sb.agent.close();
  // Not when the state is gone or being cleaned up (a cleanup from another process killed QEMU).
  const onDisk = sb.recorder.store.read(sb.id);
  if (onDisk.isErr() || onDisk.value.status === 'deleting') return;
  // A failed write is still reported through `vmGone` and the closed agent connection.
  void sb.recorder.tryUpdate((s) => ({ ...s, status: 'failed', error: why }));
}

/** Stops the watchers, tells the agent, stops the VM. The cgroups, dirs and state stay (deleteSandbox). */
export function stopSandbox(sb: Sandbox): ResultAsync<void, LifecycleError> {
  const run = async () => {
    const t = performance.now();
    await sb.syncs?.teardown();
    sb.recorder.update((s) => ({
      ...s,
      watchers: s.watchers.map((w) => ({ ...w, phase: 'removed' as const })),
    }));
    if (!sb.agent.closed) {
      // Bounded: a dead guest must not hold up the stop.
      await Promise.race([
        sb.agent.destroySandbox(),
        new Promise((r) => setTimeout(r, 2_000).unref()),
      ]);
      sb.agent.close();
    }
    crashPoint('stop');
    await sb.vm.stop(5_000);
    sb.recorder.update((s) => ({
      ...s,
      status: s.status === 'failed' ? 'failed' : 'stopped',
      vm: s.vm && { ...s.vm, phase: 'removed', qemu: null, virtiofsd: null },
      devices: s.devices.map((d) => ({ ...d, phase: 'removed' as const })),
    }));
    sb.timings['teardown'] = (sb.timings['teardown'] ?? 0) + (performance.now() - t);
  };
  return ResultAsync.fromPromise(run(), toError(sb.id));
}

/** Stops the sandbox if needed, then removes its cgroups, user, dirs and state. */
export function deleteSandbox(sb: Sandbox): ResultAsync<CleanupReport, LifecycleError> {
  const t = performance.now();
  return stopSandbox(sb)
    .andThen(() => cleanupSandbox(sb.recorder.store, sb.id))
    .map((r) => {
      sb.timings['teardown'] = (sb.timings['teardown'] ?? 0) + (performance.now() - t);
      return r;
    });
}

/** `cleanup <sid>` from any process: see ts/lifecycle/cleanup.ts. */
export function cleanup(
  sandboxId: string,
  options: Pick<SandboxOptions, 'stateRoot'> = {},
): ResultAsync<CleanupReport, LifecycleError> {
  const root = stateRoot(options.stateRoot);
  if (root.isErr()) return errAsync(root.error);
  return cleanupSandbox(new StateStore(root.value), sandboxId);
}
