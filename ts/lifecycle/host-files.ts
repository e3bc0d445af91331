// Host files a sandbox needs before QEMU starts, recorded in its state: its host dirs (with the
// parents it had to create, removed again by cleanup while empty) and the initdata image (the
// plan's bytes, written atomically with mode 0600 in its own dir). And what the lifecycle cannot
// run yet, refused up front with the config key named rather than failing inside the guest.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchownSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { err, ok, Result } from 'neverthrow';
import type { KataConfig } from '../config/kata-config.js';
import type { ResourcePlan } from '../plan/plan.js';
import type { RootlessUser } from '../rootless/index.js';
import { stepError, type LifecycleError, type LifecycleStep } from './errors.js';
import type { StateRecorder } from './state-recorder.js';

/** Config the lifecycle does not carry out yet; one line per key, as input errors. */
export function unsupportedConfig(
  sandboxId: string,
  configPath: string,
  config: KataConfig,
): LifecycleError | null {
  const lines: string[] = [];
  const h = config.hypervisor;
  if (h.sharedFs !== 'none' && h.sharedFs !== 'virtio-fs') {
    lines.push(
      `kata-ts: ${configPath}: hypervisor.qemu.shared_fs: the sandbox lifecycle runs "none" and "virtio-fs", not ${JSON.stringify(h.sharedFs)}`,
    );
  }
  return lines.length > 0 ? { kind: 'input', sandboxId, lines, message: lines.join('; ') } : null;
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code;

/** Ancestors of `dir` that do not exist yet, outermost first. */
function missingAncestors(dir: string): string[] {
  const missing: string[] = [];
  for (let p = path.dirname(dir); p !== path.dirname(p); p = path.dirname(p)) {
    try {
      lstatSync(p);
      break;
    } catch (e) {
      if (errno(e) !== 'ENOENT') break;
      missing.unshift(p);
    }
  }
  return missing;
}

/**
 * Makes `dir` (an existing one is fine) and records it; each missing ancestor is made and recorded
 * first as a parent cleanup removes only while empty (`/run/kata-containers/shared/sandboxes`, …),
 * so a sandbox leaves no empty parents behind and never removes one it did not make.
 */
export function makeRecordedDir(
  rec: StateRecorder,
  step: LifecycleStep,
  dir: string,
  mode = 0o700,
  /** `intent`: the caller marks the dir done once what goes into it is there. */
  leafPhase: 'intent' | 'done' = 'done',
): Result<void, LifecycleError> {
  const sid = rec.state.sandboxId;
  const parents = missingAncestors(dir);
  const mk = (p: string, m: number): Result<void, LifecycleError> => {
    try {
      mkdirSync(p, { mode: m });
      return ok(undefined);
    } catch (e) {
      // Made meanwhile by someone else: fine, and not ours (recorded ifEmpty, so never forced).
      return errno(e) === 'EEXIST'
        ? ok(undefined)
        : err(stepError(sid, step, `mkdir ${p}: ${(e as Error).message}`));
    }
  };
  return Result.combine(parents.map((p) => rec.tryDir(p, 'intent', true)))
    .andThen(() => rec.tryDir(dir, 'intent'))
    .andThen(() => Result.combine(parents.map((p) => mk(p, 0o755))))
    .andThen(() => mk(dir, mode))
    .andThen(() => Result.combine(parents.map((p) => rec.tryDir(p, 'done', true))))
    .andThen(() => rec.tryDir(dir, leafPhase));
}

/** Writes `bytes` to a new file in `dir` exclusively (no link followed), returning its name. */
function writeExclusive(
  dir: string,
  bytes: Uint8Array,
  owner: { uid: number; gid: number } | null,
): string {
  // Unguessable and created exclusively: with a rootless VMM its user owns `dir` and could
  // plant a link at a predictable name.
  const tmp = path.join(dir, `.initdata-${randomBytes(8).toString('hex')}.tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
    if (owner !== null) fchownSync(fd, owner.uid, owner.gid);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  return tmp;
}

/**
 * Writes the plan's initdata image (if any) where the plan put it; the dir is recorded first. With
 * a rootless VMM the image belongs to its user (QEMU opens it), in a dir prepareVmmDirs made.
 */
export function writeInitdataImage(
  rec: StateRecorder,
  plan: ResourcePlan,
  vmmUser: RootlessUser | null = null,
): Result<void, LifecycleError> {
  if (plan.initdata === null) return ok(undefined);
  const { hostPath: file, imageBase64 } = plan.initdata;
  const sid = rec.state.sandboxId;
  const dir = path.dirname(file);
  const made =
    vmmUser === null ? makeRecordedDir(rec, 'dirs', dir, 0o700, 'intent') : ok(undefined);
  return made
    .andThen(() => {
      try {
        const tmp = writeExclusive(dir, Buffer.from(imageBase64, 'base64'), vmmUser);
        renameSync(tmp, file);
        return ok(undefined);
      } catch (e) {
        return err(stepError(sid, 'dirs', `initdata image ${file}: ${(e as Error).message}`));
      }
    })
    .andThen(() => (vmmUser === null ? rec.tryDir(dir, 'done') : ok(undefined)));
}
