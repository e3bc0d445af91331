// Carries out a plan's cgroup section (behaviour.md feature 2): creates the sandbox cgroup and,
// with `sandbox_cgroup_only = false`, the overhead cgroup; moves the VMM's vCPU threads or whole
// process into the sandbox cgroup as the plan says; updates the sandbox cpuset; deletes with the
// driver recorded at create. Decisions live in ts/plan/cgroups.ts; this file only acts and
// records what it did (`CgroupRecord`, plain JSON, persisted with the sandbox state).
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import { call, callAsync, type NativeAddon, type NativeCode, type NativeError } from '../native.js';
import type { CgroupDriver, CgroupPlan, CgroupVersion, VcpuPlacement } from '../plan/cgroups.js';

type Manager = InstanceType<NativeAddon['CgroupManager']>;

/**
 * One cgroup as created: enough to find it again at delete. `createdParents`: the ancestor
 * directories its create made (`<hierarchy>/kata-ts-demo` of `/kata-ts-demo/<sid>`), removed
 * again at delete while empty; absent when it made none (and in records older than this field).
 */
export type CgroupRef =
  | {
      readonly driver: 'cgroupfs';
      readonly path: string;
      readonly createdParents?: string[];
    }
  | { readonly driver: 'systemd'; readonly slice: string; readonly unit: string };

/** What `createSandboxCgroups` made; persisted with the sandbox and handed back to delete. */
export interface CgroupRecord {
  readonly driver: CgroupDriver;
  readonly version: CgroupVersion;
  readonly sandbox: CgroupRef;
  readonly overhead: CgroupRef | null;
  readonly vcpuPlacement: VcpuPlacement;
}

/** Where the host's cgroups are (host facts, gathered by the shell; no policy). */
export interface CgroupHost {
  /** v1: the directory holding the controller hierarchies; v2: the cgroup2 mount. Default `/sys/fs/cgroup`. */
  readonly root?: string;
  /** v1 cgroupfs: hierarchies to use (directory names below `root`); default all. */
  readonly controllers?: readonly string[];
  /** How to reach systemd; default the host's system bus. */
  readonly systemd?: {
    readonly busAddress?: string;
    /** systemd's cgroup root below each hierarchy, when it runs in a cgroup namespace. */
    readonly cgroupBase?: string;
    /** systemd runs in a nested pid namespace: pids are translated into it. */
    readonly pidNamespace?: boolean;
  };
}

export type CgroupStep =
  | 'create-sandbox'
  | 'create-overhead'
  | 'place-vmm'
  | 'update-cpuset'
  | 'delete-sandbox'
  | 'delete-overhead'
  | 'delete-parents'
  | 'read-back';

export interface CgroupApplyError {
  readonly kind: 'cgroup';
  readonly step: CgroupStep;
  readonly code: NativeCode | 'CGROUP_NO_VCPUS';
  readonly message: string;
}

function fail(step: CgroupStep) {
  return (e: NativeError): CgroupApplyError => ({
    kind: 'cgroup',
    step,
    code: e.code,
    message: `${step}: ${e.message}`,
  });
}

function refs(plan: CgroupPlan): { sandbox: CgroupRef; overhead: CgroupRef | null } {
  const sandbox: CgroupRef = plan.systemd
    ? { driver: 'systemd', slice: plan.systemd.slice, unit: plan.systemd.unit }
    : { driver: 'cgroupfs', path: plan.path };
  let overhead: CgroupRef | null = null;
  if (plan.overheadSystemd)
    overhead = {
      driver: 'systemd',
      slice: plan.overheadSystemd.slice,
      unit: plan.overheadSystemd.unit,
    };
  else if (plan.overheadPath !== null) overhead = { driver: 'cgroupfs', path: plan.overheadPath };
  return { sandbox, overhead };
}

/** A native manager for one recorded cgroup. */
export function openCgroup(
  ref: CgroupRef,
  version: CgroupVersion,
  host: CgroupHost,
): ResultAsync<Manager, NativeError> {
  const root = host.root ?? '/sys/fs/cgroup';
  const made = call((n) =>
    ref.driver === 'cgroupfs'
      ? n.CgroupManager.cgroupfs({
          version,
          root,
          path: ref.path,
          ...(host.controllers ? { controllers: [...host.controllers] } : {}),
        })
      : n.CgroupManager.systemd({
          version,
          slice: ref.slice,
          unit: ref.unit,
          cgroupRoot: root,
          ...(host.systemd?.busAddress !== undefined
            ? { busAddress: host.systemd.busAddress }
            : {}),
          ...(host.systemd?.cgroupBase !== undefined
            ? { cgroupBase: host.systemd.cgroupBase }
            : {}),
          ...(host.systemd?.pidNamespace !== undefined
            ? { pidNamespace: host.systemd.pidNamespace }
            : {}),
        }),
  );
  return made.isOk() ? okAsync(made.value) : errAsync(made.error);
}

/**
 * Runs one manager operation. cgroupfs work is a few file writes, done in place like
 * `fs.*Sync`; systemd work waits on D-Bus jobs, so it runs on a native blocking thread.
 */
function op<T>(
  ref: CgroupRef,
  m: Manager,
  sync: (m: Manager) => T,
  async: (m: Manager) => Promise<T>,
): ResultAsync<T, NativeError> {
  if (ref.driver === 'cgroupfs') {
    const r = call(() => sync(m));
    return r.isOk() ? okAsync(r.value) : errAsync(r.error);
  }
  return callAsync(() => async(m));
}

function withCgroup<T>(
  step: CgroupStep,
  ref: CgroupRef,
  version: CgroupVersion,
  host: CgroupHost,
  sync: (m: Manager) => T,
  async: (m: Manager) => Promise<T>,
): ResultAsync<T, CgroupApplyError> {
  return openCgroup(ref, version, host)
    .andThen((m) => op(ref, m, sync, async))
    .mapErr(fail(step));
}

/**
 * Creates the sandbox cgroup (and the overhead cgroup when the plan has one) and places the
 * runtime (`runtimePid`) where the plan says: in the sandbox cgroup when `sandboxCgroupOnly`,
 * else in the overhead cgroup. A systemd scope with no process yet starts when the VMM is placed.
 * On failure, what was already created is removed again.
 */
export function createSandboxCgroups(
  plan: CgroupPlan,
  host: CgroupHost,
  runtimePid: number,
): ResultAsync<CgroupRecord, CgroupApplyError> {
  const { sandbox, overhead } = refs(plan);
  const record: CgroupRecord = {
    driver: plan.driver,
    version: plan.version,
    sandbox,
    overhead,
    vcpuPlacement: plan.vcpuPlacement,
  };
  const sandboxPids = plan.sandboxCgroupOnly ? [runtimePid] : [];
  const create = (step: CgroupStep, ref: CgroupRef, pids: number[]) =>
    withCgroup(
      step,
      ref,
      plan.version,
      host,
      (m) => m.create(pids),
      (m) => m.createAsync(pids),
    ).map((made) => withParents(ref, made));
  let made: CgroupRecord = record;
  return create('create-sandbox', sandbox, sandboxPids).andThen((s) => {
    made = { ...made, sandbox: s };
    return overhead === null
      ? okAsync(made)
      : create('create-overhead', overhead, [runtimePid])
          .map((o) => ({ ...made, overhead: o }))
          .orElse((e) => deleteSandboxCgroups(made, host).andThen(() => errAsync(e)));
  });
}

function withParents(ref: CgroupRef, parents: readonly string[]): CgroupRef {
  return ref.driver === 'cgroupfs' && parents.length > 0
    ? { ...ref, createdParents: [...parents] }
    : ref;
}

/**
 * The record as it will be once created, with the parents `create` is about to make: written as
 * the state's intent, so a crash right after the create still removes them. Best effort: a
 * manager that cannot be opened fails the create itself, with its error.
 */
export function intendedCgroupRecord(record: CgroupRecord, host: CgroupHost): CgroupRecord {
  const missing = (ref: CgroupRef): CgroupRef => {
    if (ref.driver !== 'cgroupfs') return ref;
    const opened = call((n) =>
      n.CgroupManager.cgroupfs({
        version: record.version,
        root: host.root ?? '/sys/fs/cgroup',
        path: ref.path,
        ...(host.controllers ? { controllers: [...host.controllers] } : {}),
      }),
    );
    const parents = opened.andThen((m) => call(() => m.missingParents()));
    return parents.isOk() ? withParents(ref, parents.value) : ref;
  };
  return {
    ...record,
    sandbox: missing(record.sandbox),
    overhead: record.overhead && missing(record.overhead),
  };
}

/** The VMM as seen from the host: its pid and its vCPU thread ids. */
export interface VmmThreads {
  readonly pid: number;
  readonly vcpuTids: readonly number[];
}

/**
 * Moves the VMM into the sandbox cgroup as recorded from the plan: each vCPU thread
 * (`threads`, v1 + cgroupfs) or the whole process (`process`, and `none`: the VMM started inside
 * the runtime's cgroup, which is this sandbox's only while no other sandbox of the same process
 * was created since, so it is added explicitly; adding a process already there is a no-op).
 * With `threads` and no vCPU thread the VMM cannot be placed (reference error text).
 */
export function placeVmm(
  record: CgroupRecord,
  host: CgroupHost,
  vmm: VmmThreads,
): ResultAsync<void, CgroupApplyError> {
  switch (record.vcpuPlacement) {
    case 'none':
    case 'process':
      return withCgroup(
        'place-vmm',
        record.sandbox,
        record.version,
        host,
        (m) => m.addProcess(vmm.pid),
        (m) => m.addProcessAsync(vmm.pid),
      );
    case 'threads': {
      if (vmm.vcpuTids.length === 0) {
        return errAsync({
          kind: 'cgroup',
          step: 'place-vmm',
          code: 'CGROUP_NO_VCPUS',
          message: 'place-vmm: hypervisor cannot be moved to sandbox cgroup',
        });
      }
      const tids = [...vmm.vcpuTids];
      return withCgroup(
        'place-vmm',
        record.sandbox,
        record.version,
        host,
        (m) => tids.forEach((t) => m.addThread(t)),
        async (m) => {
          for (const t of tids) await m.addThreadAsync(t);
        },
      );
    }
  }
}

/**
 * Writes the sandbox cpuset (the union the planner computed as containers come and go).
 * An empty `cpus` leaves the cgroup as it is: an empty cpuset would refuse every task.
 */
export function updateSandboxCpuset(
  record: CgroupRecord,
  host: CgroupHost,
  cpuset: { readonly cpus: string; readonly mems?: string },
): ResultAsync<void, CgroupApplyError> {
  if (cpuset.cpus === '') return okAsync(undefined);
  const resources = { cpus: cpuset.cpus, ...(cpuset.mems ? { mems: cpuset.mems } : {}) };
  return withCgroup(
    'update-cpuset',
    record.sandbox,
    record.version,
    host,
    (m) => m.setResources(resources),
    (m) => m.setResourcesAsync(resources),
  );
}

/**
 * Deletes the sandbox cgroup, then the overhead cgroup, with the driver recorded at create, then
 * the parents their create made, while empty (another sandbox below the same parent keeps it).
 * Remaining processes go to the root first. Idempotent: a cgroup already gone is success.
 */
export function deleteSandboxCgroups(
  record: CgroupRecord,
  host: CgroupHost,
): ResultAsync<void, CgroupApplyError> {
  const del = (step: CgroupStep, ref: CgroupRef) =>
    withCgroup(
      step,
      ref,
      record.version,
      host,
      (m) => m.delete(),
      (m) => m.deleteAsync(),
    );
  const parents = (ref: CgroupRef | null): ResultAsync<unknown, CgroupApplyError> => {
    const dirs = ref?.driver === 'cgroupfs' ? [...(ref.createdParents ?? [])] : [];
    if (ref === null || dirs.length === 0) return okAsync(undefined);
    return withCgroup(
      'delete-parents',
      ref,
      record.version,
      host,
      (m) => m.removeParents(dirs),
      (m) => m.removeParentsAsync(dirs),
    );
  };
  return (
    del('delete-sandbox', record.sandbox)
      .andThen(() =>
        record.overhead === null ? okAsync(undefined) : del('delete-overhead', record.overhead),
      )
      // Newest first: the overhead cgroup was made after the sandbox's, below parents it may share.
      .andThen(() => parents(record.overhead))
      .andThen(() => parents(record.sandbox))
      .map(() => undefined)
  );
}

/** Reads a recorded cgroup's limits back (for tests and `kata-ts` diagnostics). */
export function readCgroupResources(ref: CgroupRef, version: CgroupVersion, host: CgroupHost) {
  return withCgroup(
    'read-back',
    ref,
    version,
    host,
    (m) => m.readResources(),
    (m) => m.readResourcesAsync(),
  );
}
