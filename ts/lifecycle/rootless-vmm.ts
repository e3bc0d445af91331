// rootless = true in the lifecycle: the throwaway VMM user is created (recorded in the state as an
// intent naming the user before useradd runs, done after) before the sandbox is planned with its
// runtime dir, the host dirs QEMU uses are created owned by it, and the accelerator is the one that
// user can open. QEMU is then started as the user (ts/lifecycle/vm-start.ts); virtiofsd stays root,
// as in Kata, with its socket given to the user. Cleanup (ts/lifecycle/cleanup.ts) removes the user
// and /run/user/<uid> from the state.
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  constants,
  existsSync,
  fchownSync,
  fstatSync,
  mkdirSync,
  openSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { KataConfig } from '../config/kata-config.js';
import type { BundleInput, ResourcePlan } from '../plan/plan.js';
import { hostConst, type HostPath } from '../paths.js';
import type { Accel } from '../qemu/cmdline.js';
import {
  createDirAllWithInheritOwner,
  createRootlessUser,
  findSbinTool,
  SBIN_DIRS,
  userExists,
  type RootlessUser,
} from '../rootless/index.js';
import { err, ok, type Result } from 'neverthrow';
import { clipValue } from '../input/escape-text.js';
import { applyConfigAnnotations } from '../spec/annotations.js';
import { stepError, type LifecycleError } from './errors.js';
import type { SandboxState } from './state-schema.js';
import type { StateRecorder } from './state-recorder.js';

/** Mode of the host dirs made for the VMM user (runtime-rs: 0o750, owner inherited). */
export const VMM_DIR_MODE = 0o750;

/**
 * Stand-in rootless dir for the first, validating plan (before any user exists): input problems are
 * reported without creating a user. The sandbox is re-planned with the user's real dir.
 */
export const VALIDATION_ROOTLESS_DIR = '/run/user/0';

/** Rootless from the config or its (allowed) annotation, as the planner will see it. */
export function rootlessRequested(config: KataConfig, bundle: BundleInput): boolean {
  const applied = applyConfigAnnotations(
    config,
    bundle.spec.annotations,
    `${bundle.bundleDir}/config.json`,
  );
  // Bad annotations are reported by the planner with their keys.
  return applied.isOk() ? applied.value.config.hypervisor.rootless : config.hypervisor.rootless;
}

/** Whether kata-ts can create the VMM user at all: it must be root and find useradd. */
export function rootlessPreflight(
  sandboxId: string,
  euid = process.geteuid?.() ?? -1,
  sbinDirs: readonly string[] = SBIN_DIRS,
): LifecycleError | null {
  if (euid !== 0) {
    return stepError(
      sandboxId,
      'rootless-user',
      `rootless VMM requested but kata-ts runs as uid ${euid}, not root: it cannot create the VMM user`,
    );
  }
  const useradd = findSbinTool('useradd', sbinDirs);
  return useradd.isErr()
    ? stepError(
        sandboxId,
        'rootless-user',
        `rootless VMM requested but useradd is missing: ${useradd.error.message}`,
      )
    : null;
}

/**
 * Creates the VMM user. Each name is recorded as an intent before useradd runs (and only if no
 * such user exists yet, so cleanup never removes a user it did not make); done with its dir after.
 */
export function createVmmUser(rec: StateRecorder): Result<RootlessUser, LifecycleError> {
  const sid = rec.state.sandboxId;
  // A failed state write must stop useradd from running: the callback below aborts with it.
  class Unrecorded {
    constructor(readonly error: LifecycleError) {}
  }
  const suffix = (): string => {
    let hex = randomBytes(4).toString('hex');
    while (userExists(`kata-${hex}`)) hex = randomBytes(4).toString('hex');
    const recorded = rec.tryUpdate((s) => ({
      ...s,
      rootlessUser: { name: `kata-${hex}`, runtimeDir: '', phase: 'intent' },
    }));
    if (recorded.isErr()) throw new Unrecorded(recorded.error);
    return hex;
  };
  let created: ReturnType<typeof createRootlessUser>;
  try {
    created = createRootlessUser({ randomSuffix: suffix });
  } catch (e) {
    if (e instanceof Unrecorded) return err(e.error);
    throw e;
  }
  if (created.isErr()) {
    // createRootlessUser removed whatever it made; nothing of ours is left to undo.
    const error = stepError(sid, 'rootless-user', created.error);
    return rec
      .tryUpdate((s) => ({
        ...s,
        rootlessUser: s.rootlessUser && { ...s.rootlessUser, phase: 'removed' },
      }))
      .andThen(() => err(error));
  }
  const user = created.value;
  return rec
    .tryUpdate((s) => ({
      ...s,
      rootlessUser: { name: user.name, runtimeDir: user.runtimeDir, phase: 'done' },
    }))
    .map(() => user);
}

/** Whether `uid` with groups `gids` may open `device` read-write (root's bypass does not apply). */
export function userCanOpenRw(device: string, uid: number, gids: readonly number[]): boolean {
  try {
    const st = statSync(device);
    const bits =
      st.uid === uid
        ? (st.mode >> 6) & 0o7
        : gids.includes(st.gid)
          ? (st.mode >> 3) & 0o7
          : st.mode & 0o7;
    return (bits & 0o6) === 0o6;
  } catch {
    return false;
  }
}

/** KVM only if the VMM user itself can open /dev/kvm (probed as root, it may not): else TCG. */
export function vmmAccel(
  accel: Accel,
  user: RootlessUser,
  device = '/dev/kvm',
): { accel: Accel; reason: string } {
  if (accel !== 'kvm') return { accel, reason: '' };
  return userCanOpenRw(device, user.uid, [user.gid, user.kvmGid])
    ? { accel, reason: '' }
    : { accel: 'tcg', reason: `${device} cannot be opened by the VMM user ${user.name}` };
}

/** A host dir the VMM uses: recorded, made with owners inherited from the user's runtime dir. */
export function makeVmmDir(rec: StateRecorder, dir: string): Result<void, LifecycleError> {
  return rec
    .tryDir(dir, 'intent')
    .andThen(() =>
      createDirAllWithInheritOwner(dir, VMM_DIR_MODE).mapErr((e) =>
        stepError(rec.state.sandboxId, 'dirs', e),
      ),
    )
    .andThen(() => rec.tryDir(dir, 'done'));
}

/** The VM dir (with the jailer root holding the sockets) and the initdata dir, owned by the user. */
export function prepareVmmDirs(
  rec: StateRecorder,
  plan: ResourcePlan,
): Result<void, LifecycleError> {
  return makeVmmDir(rec, plan.hostDirs.vm)
    .andThen(() => makeVmmDir(rec, plan.hostDirs.jailerRoot))
    .andThen(() =>
      plan.initdata !== null ? makeVmmDir(rec, plan.hostDirs.initdata) : ok(undefined),
    );
}

/** Why a bind target for a hot-plugged disk was refused or could not be made. */
export interface BindTargetError {
  readonly kind:
    | 'bad-drive-id'
    | 'symlink'
    | 'not-regular-file'
    | 'not-root-owned'
    | 'not-empty'
    | 'hard-linked'
    | 'io';
  readonly path: string;
  readonly message: string;
}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** A name inside an open dir: the magic link resolves to that exact dir, like openat(2). */
const at = (dirFd: number, name: string): string => `/proc/self/fd/${dirFd}/${name}`;

function targetError(kind: BindTargetError['kind'], p: string, what: string): BindTargetError {
  return { kind, path: p, message: `${p}: ${what}` };
}

function ioError(p: string, e: unknown): BindTargetError {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ELOOP' || code === 'ENOTDIR'
    ? targetError('symlink', p, `a symlink or non-directory is in the way (${code})`)
    : targetError('io', p, clipValue((e as Error).message));
}

/** Opens `dir` walking from `/` one component at a time, refusing a symlink at every step. */
function openDirNoFollow(dir: string): number {
  let fd = openSync('/', DIR_FLAGS);
  try {
    for (const comp of path
      .resolve(dir)
      .split('/')
      .filter((c) => c !== '')) {
      const next = openSync(at(fd, comp), DIR_FLAGS);
      closeSync(fd);
      fd = next;
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * The bind target `<vmDir>/disks/<id>` for a hot-plugged disk, as an open fd. The VM dir belongs to
 * the VMM user, who can plant links anywhere below it, so nothing is done by name: every component is
 * opened with O_NOFOLLOW, `disks` is made and chowned through its fd, and the target is created
 * O_CREAT|O_EXCL|O_NOFOLLOW (0600, root's). One left by an earlier attempt is reused only if it is a
 * regular, empty, root-owned file with a single link. The caller mounts onto the fd (bindOnto) and
 * closes it.
 */
export function openBindTarget(
  vmDir: string,
  id: string,
  owner: { readonly uid: number; readonly gid: number },
): Result<number, BindTargetError> {
  const disks = path.join(vmDir, 'disks');
  const target = path.join(disks, id);
  if (id === '' || id === '.' || id === '..' || id.includes('/') || id.includes('\0')) {
    return err(targetError('bad-drive-id', target, 'the drive id is not a single file name'));
  }
  let vmFd = -1;
  let disksFd = -1;
  try {
    vmFd = openDirNoFollow(vmDir);
    try {
      mkdirSync(at(vmFd, 'disks'), { mode: VMM_DIR_MODE });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return err(ioError(disks, e));
    }
    disksFd = openSync(at(vmFd, 'disks'), DIR_FLAGS);
    fchownSync(disksFd, owner.uid, owner.gid);
  } catch (e) {
    return err(ioError(disks, e));
  } finally {
    if (vmFd >= 0) closeSync(vmFd);
  }
  try {
    try {
      const flags =
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
      return ok(openSync(at(disksFd, id), flags, 0o600));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return err(ioError(target, e));
    }
    const flags =
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;
    const fd = openSync(at(disksFd, id), flags);
    const st = fstatSync(fd);
    const refused = !st.isFile()
      ? targetError('not-regular-file', target, 'exists and is not a regular file')
      : st.uid !== 0
        ? targetError('not-root-owned', target, `exists and is owned by uid ${st.uid}, not root`)
        : st.size !== 0
          ? targetError('not-empty', target, 'exists and is not empty')
          : st.nlink !== 1
            ? targetError('hard-linked', target, `exists with ${st.nlink} links`)
            : null;
    if (refused === null) return ok(fd);
    closeSync(fd);
    return err(refused);
  } catch (e) {
    return err(ioError(target, e));
  } finally {
    closeSync(disksFd);
  }
}

/**
 * Bind-mounts `source` onto the file open as `targetFd`. mount(8) gets our /proc/<pid>/fd/<fd> and
 * must not canonicalize it (that would turn it back into a name): the kernel follows the magic link
 * to the exact inode openBindTarget checked.
 */
export function bindOnto(source: string, targetFd: number): Result<void, BindTargetError> {
  const onto = `/proc/${process.pid}/fd/${targetFd}`;
  try {
    execFileSync('mount', ['--no-canonicalize', '--bind', source, onto], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return ok(undefined);
  } catch (e) {
    const x = e as { stderr?: Buffer; message: string };
    return err(targetError('io', onto, clipValue(x.stderr?.toString().trim() || x.message)));
  }
}

/**
 * A disk image QEMU (as the VMM user) must open for a hot-plug: bound into the user's VM dir (so
 * no ancestor of the original needs to be searchable by it) and chowned to the user, the previous
 * owner recorded first. Returns the path QEMU opens. Cleanup unmounts the bind and gives the file
 * back (restoreGrants). The bind target is made and mounted onto through fds (openBindTarget).
 */
export function grantDisk(
  rec: StateRecorder,
  plan: ResourcePlan,
  user: RootlessUser,
  d: { id: string; pathOnHost: string },
  containerId: string,
): Result<HostPath, LifecycleError> {
  const sid = rec.state.sandboxId;
  const target = path.join(plan.hostDirs.vm, 'disks', d.id);
  const failed = (what: string, message: string): LifecycleError =>
    stepError(sid, 'hotplug', `giving ${d.pathOnHost} to ${user.name}: ${what}: ${message}`);
  const io = (what: string, act: () => void): Result<void, LifecycleError> => {
    try {
      act();
      return ok(undefined);
    } catch (e) {
      return err(failed(what, clipValue((e as Error).message)));
    }
  };
  const grantDone = () =>
    rec.tryUpdate((s) => ({
      ...s,
      grants: (s.grants ?? []).map((g) =>
        g.path === d.pathOnHost && g.phase === 'intent' ? { ...g, phase: 'done' as const } : g,
      ),
    }));
  const mountDone = () =>
    rec.tryUpdate((s) => ({
      ...s,
      mounts: s.mounts.map((m) =>
        m.target === target && m.phase === 'intent' ? { ...m, phase: 'done' as const } : m,
      ),
    }));
  let owner = { uid: 0, gid: 0 };
  let targetFd = -1;
  const result = io('stat', () => {
    const st = statSync(d.pathOnHost);
    owner = { uid: st.uid, gid: st.gid };
  })
    .andThen(() =>
      rec.tryUpdate((s) => ({
        ...s,
        grants: [...(s.grants ?? []), { path: d.pathOnHost, ...owner, phase: 'intent' }],
      })),
    )
    .andThen(() => io('chown', () => chownSync(d.pathOnHost, user.uid, user.gid)))
    .andThen(grantDone)
    .andThen(() =>
      openBindTarget(plan.hostDirs.vm, d.id, user)
        .map((fd) => {
          targetFd = fd;
        })
        .mapErr((e) => failed('bind target', e.message)),
    )
    .andThen(() =>
      rec.tryUpdate((s) => ({
        ...s,
        mounts: [...s.mounts, { target, containerId, phase: 'intent' }],
      })),
    )
    .andThen(() => bindOnto(d.pathOnHost, targetFd).mapErr((e) => failed('bind', e.message)))
    .andThen(mountDone)
    .map(() => hostConst(target));
  if (targetFd >= 0) closeSync(targetFd);
  return result;
}

/** Gives every granted file back to its recorded owner (missing files count as done). */
export function restoreGrants(grants: NonNullable<SandboxState['grants']>): {
  restored: string[];
  failed: string[];
} {
  const restored: string[] = [];
  const failed: string[] = [];
  for (const g of grants) {
    if (g.phase === 'removed') continue;
    try {
      if (existsSync(g.path)) chownSync(g.path, g.uid, g.gid);
      restored.push(g.path);
    } catch (e) {
      failed.push(`chown ${g.path} back to ${g.uid}:${g.gid}: ${(e as Error).message}`);
    }
  }
  return { restored, failed };
}
