// Host directories of one sandbox (reference-runtime-rs.md §0 and §2). When the VMM runs rootless
// every one of them moves below the rootless dir (runtime-rs `prefix_with_rootless_dir` callers:
// KATA_PATH, persist dir, direct-volume root, initdata dir, host shared dir). Guest paths never
// move: nothing here produces a GuestPath.
import { err, ok, Result } from 'neverthrow';
import { hostPath, joinHost, type HostPath, type PathError } from '../paths.js';
import { NOT_ROOTLESS, prefixWithRootlessDir, type RootlessContext } from './rootless-dirs.js';

/** runtime-rs `KATA_PATH`: VM dirs are `<KATA_PATH>/<sid>`. */
export const KATA_PATH = '/run/kata';
/** Jailer root below the VM dir; the rootless QMP socket lives in it. */
export const JAILER_ROOT = 'root';
/** runtime-rs `DEFAULT_KATA_HOST_SHARED_DIR` (share_fs/mod.rs). */
export const HOST_SHARED_SANDBOXES_DIR = '/run/kata-containers/shared/sandboxes';
/** runtime-rs `DEFAULT_KATA_SHARED_INIT_DATA_PATH` (coco_data/initdata.rs). */
export const HOST_INITDATA_DIR = '/run/kata-containers/shared/initdata';
/** kata-types `KATA_DIRECT_VOLUME_ROOT_PATH` (mount.rs); shared by all sandboxes. */
export const DIRECT_VOLUMES_DIR = '/run/kata-containers/shared/direct-volumes';
export const SHARED_RW = 'rw';
export const SHARED_RO = 'ro';

/** Where a sandbox keeps its files on the host. Each is rootless-prefixed when rootless. */
export interface HostDirs {
  /** VM dir `/run/kata/<sid>`: QMP socket dir, hvsock, console. */
  readonly vm: HostPath;
  /** `<vm>/root` (runtime-rs jailer root; rootless QMP socket `<jailerRoot>/qmp.sock`). */
  readonly jailerRoot: HostPath;
  /** `/run/kata-containers/shared/sandboxes/<sid>`. */
  readonly sharedSandbox: HostPath;
  /** `<sharedSandbox>/rw`: bind targets and block-volume mount points are created here. */
  readonly sharedRw: HostPath;
  /** `<sharedSandbox>/ro`: read-only bind of `rw`, the virtio-fs root; entries appear through that bind, none is made here. */
  readonly sharedRo: HostPath;
  /** `/run/kata-containers/shared/initdata/<sid>` (holds `initdata.image`). */
  readonly initdata: HostPath;
  /**
   * Persisted sandbox state. runtime-rs `persist::to_disk` writes `<KATA_PATH>/<sid>/state.json`,
   * so this is the VM dir (runtime-go used `/run/vc/sbs/<sid>`).
   */
  readonly persist: HostPath;
  /** Direct-volume root `/run/kata-containers/shared/direct-volumes` (not per sandbox). */
  readonly directVolumes: HostPath;
}

/** A path the host creates inside the rw shared dir for a volume the guest mounts there. */
export interface SharedMountPoint {
  readonly path: HostPath;
  /** `file` when the mount destination is under `/dev` (runtime-rs creates an empty file), else `dir`. */
  readonly kind: 'dir' | 'file';
}

/** The rootless context the plan uses: off, or on with the dir host facts carry. */
export function planRootlessContext(
  enabled: boolean,
  rootlessDir: string | undefined,
): Result<RootlessContext, string> {
  if (!enabled) return ok(NOT_ROOTLESS);
  if (rootlessDir === undefined || rootlessDir === '') {
    return err(
      'rootless is on but host facts carry no rootlessDir (the VMM user runtime dir, /run/user/<uid>)',
    );
  }
  return hostPath(rootlessDir)
    .map((dir): RootlessContext => ({ rootless: true, dir }))
    .mapErr((e) => `rootlessDir: ${e.message}`);
}

/** The host dirs of sandbox `sandboxId` (a plain name: it is refused when it holds `/`, `..` or NUL). */
export function planHostDirs(
  sandboxId: string,
  rootless: RootlessContext,
): Result<HostDirs, PathError> {
  const perSandbox = (base: string) =>
    prefixWithRootlessDir(base, rootless).andThen((b) => joinHost(b, sandboxId));
  const vm = perSandbox(KATA_PATH);
  const sharedSandbox = perSandbox(HOST_SHARED_SANDBOXES_DIR);
  const parts = Result.combine([
    vm,
    vm.andThen((d) => joinHost(d, JAILER_ROOT)),
    sharedSandbox,
    sharedSandbox.andThen((d) => joinHost(d, SHARED_RW)),
    sharedSandbox.andThen((d) => joinHost(d, SHARED_RO)),
    perSandbox(HOST_INITDATA_DIR),
    prefixWithRootlessDir(DIRECT_VOLUMES_DIR, rootless),
  ]);
  return parts.map(([vmDir, jailerRoot, shared, sharedRw, sharedRo, initdata, directVolumes]) => ({
    vm: vmDir,
    jailerRoot,
    sharedSandbox: shared,
    sharedRw,
    sharedRo,
    initdata,
    persist: vmDir,
    directVolumes,
  }));
}

/**
 * runtime-rs `generate_shared_path`: the mount point of a volume named `name` is made under
 * `<sharedRw>/passthrough/` whatever the volume's read-only flag — `ro` is a read-only bind of
 * `rw`, so nothing can be created there (and nothing needs to be).
 */
export function sharedMountPoint(
  dirs: Pick<HostDirs, 'sharedRw'>,
  passthrough: string,
  name: string,
  destination: string,
): Result<SharedMountPoint, PathError> {
  return joinHost(dirs.sharedRw, passthrough, name).map((path) => ({
    path,
    kind: destination.startsWith('/dev') ? 'file' : 'dir',
  }));
}
