// The persisted state of one sandbox (`<state root>/<sid>/state.json`): what was created, each
// entry written as an intent before the side effect and marked done after it, so a fresh process
// can undo any prefix of a create after a crash (ts/lifecycle/cleanup.ts). Validated with zod on
// every read; `schemaVersion` changes when a field's meaning does.
import { z } from 'zod';

export const STATE_SCHEMA_VERSION = 1;

/** `intent`: about to be created (may or may not exist); `done`: exists; `removed`: undone. */
const Phase = z.enum(['intent', 'done', 'removed']);
export type Phase = z.infer<typeof Phase>;

/** A process we started: pid plus its /proc starttime, so a recycled pid is never killed. */
const ProcessRef = z.strictObject({
  pid: z.int().min(1),
  /** Field 22 of /proc/<pid>/stat (clock ticks since boot). */
  startTime: z.string().regex(/^\d+$/),
});
export type ProcessRef = z.infer<typeof ProcessRef>;

const CgroupRef = z.union([
  z.strictObject({
    driver: z.literal('cgroupfs'),
    path: z.string(),
    createdParents: z.array(z.string()).optional(),
  }),
  z.strictObject({ driver: z.literal('systemd'), slice: z.string(), unit: z.string() }),
]);

/** ts/apply/cgroups.ts CgroupRecord. */
const CgroupRecordSchema = z.strictObject({
  driver: z.enum(['cgroupfs', 'systemd']),
  version: z.enum(['v1', 'v2']),
  sandbox: CgroupRef,
  overhead: CgroupRef.nullable(),
  vcpuPlacement: z.enum(['threads', 'process', 'none']),
});

/** ts/apply/cgroups.ts CgroupHost: where the cgroups live, needed again to delete them. */
const CgroupHostSchema = z.strictObject({
  root: z.string().optional(),
  controllers: z.array(z.string()).optional(),
  systemd: z
    .strictObject({
      busAddress: z.string().optional(),
      cgroupBase: z.string().optional(),
      pidNamespace: z.boolean().optional(),
    })
    .optional(),
});

const DirEntry = z.strictObject({
  path: z.string(),
  phase: Phase,
  /**
   * A parent dir this sandbox created (e.g. /run/kata-containers/shared/sandboxes) that others
   * may use once it exists: cleanup removes it only while it is empty (rmdir, never recursive).
   */
  ifEmpty: z.boolean().optional(),
});

const VmEntry = z.strictObject({
  phase: Phase,
  /** Unique to this sandbox: found in a QEMU/virtiofsd argv even when the pid was never recorded. */
  qmpSocket: z.string(),
  agentSocket: z.string(),
  virtiofsSocket: z.string(),
  qemu: ProcessRef.nullable(),
  virtiofsd: ProcessRef.nullable(),
  accel: z.enum(['kvm', 'tcg']),
});

/** A host mount (shared_fs = virtio-fs binds into the shared dir); unmounted by cleanup. */
const MountEntry = z.strictObject({
  target: z.string(),
  containerId: z.string().nullable(),
  phase: Phase,
});

/**
 * A host file handed to the rootless VMM user (a hot-plugged disk image): chowned to it, its
 * previous owner kept so cleanup gives it back.
 */
const GrantEntry = z.strictObject({ path: z.string(), uid: z.int(), gid: z.int(), phase: Phase });

const DeviceEntry = z.strictObject({
  id: z.string(),
  containerId: z.string(),
  pathOnHost: z.string(),
  phase: Phase,
});

const WatcherEntry = z.strictObject({
  source: z.string(),
  containerId: z.string(),
  guestPath: z.string(),
  /** Watchers are threads of the process that owns the sandbox: they end with it. */
  owner: ProcessRef,
  phase: Phase,
});

const ContainerEntry = z.strictObject({
  id: z.string(),
  bundle: z.string(),
  status: z.enum(['creating', 'created', 'running', 'stopped', 'removed']),
  exitStatus: z.int().nullable(),
});

export const SandboxStateSchema = z.strictObject({
  schemaVersion: z.literal(STATE_SCHEMA_VERSION),
  sandboxId: z.string(),
  status: z.enum(['creating', 'ready', 'stopped', 'failed', 'deleting']),
  /** Why the sandbox failed (QEMU exited, agent lost, a step's error). */
  error: z.string().nullable(),
  createdAt: z.string(),
  /** Inputs, so containers can be re-planned with the same random draws. */
  configPath: z.string(),
  sandboxBundle: z.string(),
  /** Every random hex the planner drew, in order (replayed when re-planning). */
  random: z.array(z.string()),
  /** The process holding the sandbox's agent connection and watchers. */
  owner: ProcessRef.nullable(),
  dirs: z.array(DirEntry),
  rootlessUser: z
    .strictObject({ name: z.string(), runtimeDir: z.string(), phase: Phase })
    .nullable(),
  cgroups: z
    .strictObject({ record: CgroupRecordSchema, host: CgroupHostSchema, phase: Phase })
    .nullable(),
  vm: VmEntry.nullable(),
  /** In mount order; undone in reverse. */
  mounts: z.array(MountEntry),
  devices: z.array(DeviceEntry),
  /** Files given to the rootless VMM user; absent in states written before rootless support. */
  grants: z.array(GrantEntry).optional(),
  watchers: z.array(WatcherEntry),
  containers: z.array(ContainerEntry),
});

export type SandboxState = z.infer<typeof SandboxStateSchema>;
export type ContainerEntry = z.infer<typeof ContainerEntry>;
