// Host mounts of shared_fs = virtio-fs sandboxes, as runtime-rs makes them: the shared dir's `rw`
// is bind-mounted onto itself and made shared, then bound read-only onto `ro` as a slave, so
// binds made later in `rw` (container rootfs, volumes) appear in `ro`, which is what virtiofsd
// exports; a read-only volume is made read-only in both. Each mount is recorded before it is
// made; cleanup unmounts in reverse order (lazily, so a busy mount cannot block it) and refuses
// to remove a directory with mounts still below it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import type { ContainerPlan, ResourcePlan } from '../plan/plan.js';
import { err, ok, type Result } from 'neverthrow';
import { stepError, type LifecycleError, type LifecycleStep } from './errors.js';
import { makeRecordedDir } from './host-files.js';
import type { StateRecorder } from './state-recorder.js';

function run(args: string[]): string | null {
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return null;
  } catch (e) {
    const x = e as { stderr?: Buffer; message: string };
    return x.stderr?.toString().trim() || x.message;
  }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo, octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const decode = (p: string) =>
    p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Lazily unmounts every mount stacked at `target`; true when none is left. */
export function unmountAll(target: string): boolean {
  for (let i = 0; i < 16 && mountsUnder(target).includes(target); i++) {
    try {
      execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    } catch {
      break;
    }
  }
  return !mountsUnder(target).includes(target);
}

class Mounter {
  constructor(
    private readonly rec: StateRecorder,
    private readonly step: LifecycleStep,
    private readonly containerId: string | null,
  ) {}

  /** Records `target`, runs each `mount` argv in order, marks it done. */
  mount(target: string, ...commands: string[][]): Result<void, LifecycleError> {
    const sid = this.rec.state.sandboxId;
    const runAll = (): Result<void, LifecycleError> => {
      for (const args of commands) {
        const failed = run(args);
        if (failed !== null)
          return err(stepError(sid, this.step, `mount ${args.join(' ')}: ${failed}`));
      }
      return ok(undefined);
    };
    return this.rec
      .tryUpdate((s) => ({
        ...s,
        mounts: [...s.mounts, { target, containerId: this.containerId, phase: 'intent' }],
      }))
      .andThen(runAll)
      .andThen(() =>
        this.rec.tryUpdate((s) => ({
          ...s,
          mounts: s.mounts.map((m) =>
            m.target === target && m.phase === 'intent' ? { ...m, phase: 'done' as const } : m,
          ),
        })),
      )
      .map(() => undefined);
  }

  /** Unmounts a mount this Mounter made and records it removed. */
  unmount(target: string): Result<void, LifecycleError> {
    if (!unmountAll(target))
      return err(stepError(this.rec.state.sandboxId, this.step, `cannot unmount ${target}`));
    return this.rec
      .tryUpdate((s) => ({
        ...s,
        mounts: s.mounts.map((m) =>
          m.target === target && m.phase === 'done' ? { ...m, phase: 'removed' as const } : m,
        ),
      }))
      .map(() => undefined);
  }

  /** Changes the flags of a mount that exists (no new mount, nothing to record). */
  remount(target: string, flags: 'ro' | 'rw'): Result<void, LifecycleError> {
    const failed = run(['-o', `remount,bind,${flags}`, target]);
    return failed === null
      ? ok(undefined)
      : err(
          stepError(
            this.rec.state.sandboxId,
            this.step,
            `mount -o remount,bind,${flags} ${target}: ${failed}`,
          ),
        );
  }

  /** Runs `fs`, an error naming `what` instead of a throw. */
  fs(what: string, fs: () => void): Result<void, LifecycleError> {
    try {
      fs();
      return ok(undefined);
    } catch (e) {
      return err(
        stepError(this.rec.state.sandboxId, this.step, `${what}: ${(e as Error).message}`),
      );
    }
  }
}

/**
 * Makes sure an empty file exists at `target` (an existing file is kept), without following a
 * link planted at its name nor blocking on a planted FIFO; either is refused with a named error.
 */
export function touchFile(target: string): void {
  let fd: number;
  try {
    fd = openSync(
      target,
      constants.O_WRONLY |
        constants.O_CREAT |
        constants.O_NOFOLLOW |
        constants.O_NONBLOCK |
        constants.O_NOCTTY,
      0o644,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new Error(
      code === 'ELOOP' ? `${target} is a symbolic link (not followed)` : `${target}: ${code}`,
    );
  }
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${target} is not a regular file`);
  } finally {
    closeSync(fd);
  }
}

/** A bind target of the source's kind: an empty file for a file, else a directory. */
function makeTarget(source: string, target: string): void {
  mkdirSync(path.dirname(target), { recursive: true });
  if (statSync(source).isDirectory()) mkdirSync(target, { recursive: true });
  else touchFile(target);
}

/**
 * `rw` self-bound and shared, `ro` its read-only slave (virtiofsd's root), and the private stage
 * read-only volumes are bound through.
 */
export function mountSharedDirs(
  rec: StateRecorder,
  plan: ResourcePlan,
): Result<void, LifecycleError> {
  const { sharedSandbox, sharedRw, sharedRo } = plan.hostDirs;
  const m = new Mounter(rec, 'dirs', null);
  return makeRecordedDir(rec, 'dirs', sharedSandbox, 0o750)
    .andThen(() =>
      m.fs(`mkdir ${sharedRw}`, () => mkdirSync(sharedRw, { recursive: true, mode: 0o750 })),
    )
    .andThen(() =>
      m.fs(`mkdir ${sharedRo}`, () => mkdirSync(sharedRo, { recursive: true, mode: 0o750 })),
    )
    .andThen(() => m.mount(sharedRw, ['--bind', sharedRw, sharedRw], ['--make-shared', sharedRw]))
    .andThen(() =>
      m.mount(
        sharedRo,
        ['--bind', sharedRw, sharedRo],
        ['--make-slave', sharedRo],
        ['-o', 'remount,bind,ro', sharedRo],
      ),
    )
    .andThen(() => stageRoot(rec))
    .andThen((stage) =>
      m
        .fs(`mkdir ${stage}`, () => mkdirSync(stage, { recursive: true, mode: 0o700 }))
        .andThen(() => m.mount(stage, ['--bind', stage, stage], ['--make-private', stage])),
    );
}

/**
 * Where read-only binds are staged: a private mount in the sandbox's state dir, so a bind below it
 * propagates nowhere.
 */
function stageRoot(rec: StateRecorder): Result<string, LifecycleError> {
  return rec.store.dir(rec.state.sandboxId).map((d) => path.join(d, 'ro-stage'));
}

/**
 * A read-only volume bind in `rw`, read-only from its first moment in `ro` too. A bind propagates
 * into `ro` (what virtiofsd exports) as a clone with the flags it has when it is made, and a
 * later remount changes only the one mount. So the source is first bound into the private stage
 * and made read-only there, and that read-only mount is bound into `rw`: its clones, the
 * propagated one in `ro` included, are read-only at once. The stage mount goes again; both
 * copies are then remounted read-only anyway, as runtime-rs does (`bind_remount` of the ro path).
 */
function mountReadOnlyVolume(
  m: Mounter,
  rec: StateRecorder,
  b: ContainerPlan['sharedFsBinds'][number],
): Result<void, LifecycleError> {
  return stageRoot(rec).andThen((root) => {
    const staged = path.join(root, randomBytes(8).toString('hex'));
    return m
      .fs(`stage ${staged}`, () => makeTarget(b.hostSource, staged))
      .andThen(() =>
        m.mount(staged, ['--bind', b.hostSource, staged], ['-o', 'remount,bind,ro', staged]),
      )
      .andThen(() => m.fs(`bind target ${b.hostPath}`, () => makeTarget(b.hostSource, b.hostPath)))
      .andThen(() => m.mount(b.hostPath, ['--bind', staged, b.hostPath]))
      .andThen(() => m.unmount(staged))
      .andThen(() =>
        m.fs(`remove ${staged}`, () =>
          statSync(staged).isDirectory() ? rmdirSync(staged) : rmSync(staged),
        ),
      )
      .andThen(() => m.remount(b.hostReadOnlyPath, 'ro'))
      .andThen(() => m.remount(b.hostPath, 'ro'));
  });
}

/** A volume bind in `rw` (seen in `ro`); a read-write upgrade remounts both copies rw. */
function mountVolume(
  m: Mounter,
  rec: StateRecorder,
  b: ContainerPlan['sharedFsBinds'][number],
): Result<void, LifecycleError> {
  if (b.action === 'reuse') return ok(undefined);
  if (b.action === 'upgrade-rw') {
    return m
      .mount(b.hostPath, ['-o', 'remount,bind,rw', b.hostPath])
      .andThen(() => m.remount(b.hostReadOnlyPath, 'rw'));
  }
  if (b.readOnly) return mountReadOnlyVolume(m, rec, b);
  return m
    .fs(`bind target ${b.hostPath}`, () => makeTarget(b.hostSource, b.hostPath))
    .andThen(() => m.mount(b.hostPath, ['--bind', b.hostSource, b.hostPath]));
}

/** The container's rootfs mount and bind, volume binds and mount points in the shared dir. */
export function mountContainerShares(
  rec: StateRecorder,
  c: ContainerPlan,
): Result<void, LifecycleError> {
  const m = new Mounter(rec, 'copy', c.id);
  const { hostMount, sharedBind } = c.rootfs;
  let done: Result<void, LifecycleError> = ok(undefined);
  if (hostMount) {
    const opts = hostMount.options.length > 0 ? ['-o', hostMount.options.join(',')] : [];
    done = done
      .andThen(() =>
        m.fs(`mkdir ${hostMount.target}`, () => mkdirSync(hostMount.target, { recursive: true })),
      )
      .andThen(() =>
        m.mount(hostMount.target, [
          '-t',
          hostMount.type,
          ...opts,
          hostMount.source,
          hostMount.target,
        ]),
      );
  }
  if (sharedBind) {
    done = done
      .andThen(() =>
        m.fs(`bind target ${sharedBind.hostPath}`, () =>
          makeTarget(sharedBind.source, sharedBind.hostPath),
        ),
      )
      .andThen(() =>
        m.mount(sharedBind.hostPath, ['--bind', sharedBind.source, sharedBind.hostPath]),
      );
  }
  for (const b of c.sharedFsBinds) done = done.andThen(() => mountVolume(m, rec, b));
  for (const p of c.sharedMountPoints) {
    done = done.andThen(() =>
      m.fs(`mount point ${p.path}`, () => {
        mkdirSync(p.kind === 'dir' ? p.path : path.dirname(p.path), { recursive: true });
        if (p.kind === 'file') touchFile(p.path);
      }),
    );
  }
  return done;
}
