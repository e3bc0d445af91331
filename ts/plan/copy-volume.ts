// Copy volumes (shared_fs = none): a bind mount whose source is copied into the guest share dir
// with CopyFile and then bind-mounted from there. Files are always copied; directories only when
// they are allowlisted kubelet volumes (canonical path and the path as written both inside the
// same `<kubelet root>/pods/<uid>/volumes/kubernetes.io~{configmap,secret,downward-api,projected}/<name>`)
// or when `[runtime] allow_any_copy_directory` opts into runtime-go's "copy anything".
// A source that names a kubelet volume but resolves outside it (`..`, symlinks) is always refused.
import { err, ok, type Result } from 'neverthrow';
import type { Problem } from '../errors.js';
import type { GuestPath } from '../paths.js';
import type { OciMount } from '../spec/oci-spec.js';
import { pathFact, type HostFacts } from './host-facts.js';
import { allowlistedVolume, lexicalPrefix, sameVolume } from './k8s-paths.js';
import type { VolumeManager } from './volume-manager.js';
import { copyGuestPath, mountProblem, type RandomHex } from './volumes-paths.js';

/**
 * One host entry to copy into the guest before the container starts: everything apply needs,
 * so it neither parses the guest path nor re-derives the key.
 */
export interface CopyStep {
  /** Canonical host source: what is copied. */
  readonly source: string;
  /** The live sync this destination joins: one watcher per key, fanning out to every destination. */
  readonly syncKey: string;
  /** Where it is copied to: `<share dir>/<cid>-<16 hex>-<basename(mount destination)>`. */
  readonly guestPath: GuestPath;
  readonly kind: 'file' | 'dir';
  /** Kept in sync by a watcher after the first copy (allowlisted kubelet volumes); else copied once. */
  readonly watched: boolean;
}

export interface CopyVolumeContext {
  /** Bundle config.json, for problems. */
  readonly specSource: string;
  readonly containerId: string;
  readonly host: HostFacts;
  readonly kubeletRootDir: string;
  readonly allowAnyCopyDirectory: boolean;
  readonly manager: VolumeManager;
  readonly random: RandomHex;
}

export interface CopyVolume {
  readonly mount: OciMount;
  readonly copy: CopyStep;
}

/** The configured kubelet root and its canonical form, when known. */
export function kubeletRoots(host: HostFacts, kubeletRootDir: string): string[] {
  const real = pathFact(host, kubeletRootDir).realpath;
  return real !== undefined && real !== kubeletRootDir ? [kubeletRootDir, real] : [kubeletRootDir];
}

/** Plans the copy of `mounts[index]`. */
export function planCopyVolume(
  mount: OciMount,
  index: number,
  ctx: CopyVolumeContext,
): Result<CopyVolume, Problem> {
  const field = `mounts[${index}]`;
  const fail = (value: unknown, what: string) =>
    err(mountProblem(ctx.specSource, field, value, what));
  const raw = mount.source ?? '';
  if (raw === '')
    return fail(raw, `${mount.destination}: a bind mount without a source cannot be copied`);
  const fact = pathFact(ctx.host, raw);
  const real = fact.realpath;
  if (fact.kind === 'missing' || real === undefined)
    return fail(raw, `failed to canonicalize file ${raw}: no such file or directory`);

  const roots = kubeletRoots(ctx.host, ctx.kubeletRootDir);
  const claimed = allowlistedVolume(lexicalPrefix(raw), roots);
  const resolved = allowlistedVolume(real, roots);
  if (claimed !== null && (resolved === null || !sameVolume(claimed, resolved))) {
    return fail(
      raw,
      `source escapes its volume ${claimed.dir} through '..' or a symlink (resolves to ${real})`,
    );
  }

  const guestMount = (guestPath: GuestPath): OciMount => ({
    ...mount,
    type: 'bind',
    source: guestPath,
    options: [...(mount.options ?? [])],
  });
  if (fact.kind === 'file') {
    const guestPath = copyGuestPath(ctx.containerId, mount.destination, ctx.random);
    if (guestPath.isErr()) return fail(mount.destination, guestPath.error);
    const copy: CopyStep = {
      source: real,
      syncKey: real,
      guestPath: guestPath.value,
      kind: 'file',
      watched: false,
    };
    return ok({ mount: guestMount(guestPath.value), copy });
  }
  if (fact.kind !== 'dir')
    return fail(
      raw,
      `cannot copy a ${fact.kind} device or special file into the guest (shared_fs = none)`,
    );

  const allowlisted = claimed !== null && resolved !== null;
  if (!allowlisted && !ctx.allowAnyCopyDirectory) {
    return fail(
      raw,
      `directory ${raw} is not a kubelet configmap, secret, downward-api or projected volume under ${roots.join(' or ')}/pods/<uid>/volumes/; ` +
        'shared_fs = none copies only those (set [runtime] allow_any_copy_directory = true to copy any directory)',
    );
  }
  const acquired = ctx.manager.acquire(
    real,
    ctx.containerId,
    mount.destination,
    ctx.random,
    allowlisted,
  );
  if (acquired.isErr()) return fail(mount.destination, acquired.error);
  const { guestPath, key } = acquired.value;
  return ok({
    mount: guestMount(guestPath),
    copy: { source: real, syncKey: key, guestPath, kind: 'dir', watched: allowlisted },
  });
}
