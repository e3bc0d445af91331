// A container's rootfs (runtime-rs `handler_rootfs`, reference §19–24, vectors §4): from the
// rootfs mounts a shim receives (containerd Mounts) — none: the bundle's root.path shared over the
// shared fs; an overlay (or other) mount: mounted at `<bundle>/rootfs` and shared; a block device
// or a blockfile snapshot (`loop`): hot-plugged; a Kata virtual volume: pulled in the guest.
// Force guest pull (either spelling) replaces the mounts by an image_guest_pull volume, with or
// without a shared fs (the reference honours it only with shared_fs = none). Every block driver
// works for a block rootfs, virtio-pmem included (behaviour.md feature 7; the reference refuses
// pmem with `Complete support for block driver virtio-pmem has not been implemented yet`).
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { SharedFs } from '../config/kata-config.js';
import { problem, type Problem } from '../errors.js';
import { hostPath, joinGuest, joinHost, type GuestPath, type HostPath } from '../paths.js';
import { storageSource, type BlockDevice, type BlockDevicePlanner } from './devices.js';
import { pathFact, type HostFacts } from './host-facts.js';
import type { SharedMountPoint } from './host-dirs.js';
import {
  decodeVirtualVolume,
  FORCE_GUEST_PULL_OPTION,
  KATA_VIRTUAL_VOLUME_PREFIX,
  planVirtualVolumeRootfs,
  virtualVolumeOption,
} from './virtual-volume.js';
import { GUEST_SHARE_DIR, PASSTHROUGH } from './volumes-paths.js';
import type { StorageInit } from './volumes-storage.js';

/** A containerd Mount as in a task-create request (`rootfs-mounts.json`). */
export interface RootfsMount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

export const ROOTFS = 'rootfs';
/** kata-types `KATA_IMAGE_FORCE_GUEST_PULL`. */
export const FORCE_GUEST_PULL = 'force_guest_pull';

export type RootfsKind = 'shared-fs' | 'block' | 'guest-pull';

export interface RootfsPlan {
  readonly kind: RootfsKind;
  /** Spec root.path for the agent. */
  readonly guestPath: GuestPath;
  readonly storages: readonly StorageInit[];
  readonly blockDevice?: BlockDevice;
  /** Shared-fs: a rootfs mount to perform on the host first (at `<bundle>/rootfs`). */
  readonly hostMount?: {
    readonly type: string;
    readonly source: string;
    readonly options: readonly string[];
    readonly target: HostPath;
  };
  /** Block rootfs with a shared fs: the host dir that makes its mount point exist in the guest. */
  readonly sharedMountPoint?: SharedMountPoint;
  /** Shared-fs: host directory bound into the shared dir, and where. */
  readonly sharedBind?: {
    readonly source: HostPath;
    readonly hostPath: HostPath;
    readonly guestPath: GuestPath;
  };
}

export interface RootfsContext {
  readonly containerId: string;
  /** The sandbox's rw shared dir (`HostDirs.sharedRw`, rootless-prefixed when rootless). */
  readonly sharedRw: HostPath;
  /** Absolute bundle directory. */
  readonly bundlePath: string;
  /** Spec root.path (relative to the bundle or absolute). */
  readonly rootPath: string;
  readonly mounts: readonly RootfsMount[];
  /** Where the mounts came from (for problems), e.g. `<bundle>/rootfs-mounts.json`. */
  readonly mountsSource: string;
  readonly annotations: Readonly<Record<string, string>>;
  readonly sharedFs: SharedFs;
  readonly forceGuestPull: boolean;
  readonly host: HostFacts;
  readonly devices: BlockDevicePlanner;
}

/** VM rootfs filesystem that needs `nouuid` (cloned xfs images share a UUID). */
const XFS = 'xfs';

function sharedRootfs(
  ctx: RootfsContext,
  source: string,
  hostMount: RootfsPlan['hostMount'],
  fail: (v: unknown, w: string) => Result<RootfsPlan, Problem>,
): Result<RootfsPlan, Problem> {
  if (ctx.sharedFs === 'none')
    return fail(
      ctx.sharedFs,
      'share fs is unavailable: shared_fs = none needs a block, virtual-volume or guest-pull rootfs',
    );
  const src = hostPath(source);
  const rw = joinHost(ctx.sharedRw, PASSTHROUGH, ctx.containerId, ROOTFS);
  const guest = joinGuest(GUEST_SHARE_DIR, PASSTHROUGH, ctx.containerId, ROOTFS);
  if (src.isErr()) return fail(source, src.error.message);
  if (rw.isErr()) return fail(ctx.containerId, rw.error.message);
  if (guest.isErr()) return fail(ctx.containerId, guest.error.message);
  return ok({
    kind: 'shared-fs',
    guestPath: guest.value,
    storages: [],
    ...(hostMount ? { hostMount } : {}),
    sharedBind: { source: src.value, hostPath: rw.value, guestPath: guest.value },
  });
}

function blockRootfs(
  ctx: RootfsContext,
  m: RootfsMount,
  pathOnHost: string,
  options: string[],
  fail: (v: unknown, w: string) => Result<RootfsPlan, Problem>,
): Result<RootfsPlan, Problem> {
  const p = hostPath(pathOnHost);
  if (p.isErr()) return fail(pathOnHost, p.error.message);
  const dev = ctx.devices.allocate({
    pathOnHost: p.value,
    readOnly: options.includes('ro'),
    hotplug: true,
  });
  if (dev.isErr())
    return fail(
      m.source,
      `cannot attach ${pathOnHost}: ${dev.error.problems.map((x) => x.message).join('; ')}`,
    );
  const source = storageSource(dev.value.agentDriver, dev.value);
  if (source.isErr()) return fail(m.source, source.error.message);
  // runtime-rs block_rootfs.rs: `do_get_guest_path(ROOTFS, cid, false, false)`, i.e.
  // `<share>/passthrough/<cid>/rootfs`, and the host dir `rw/passthrough/<cid>/rootfs` is made so
  // the mount point exists in the guest's read-only view of a shared fs (the guest cannot create
  // it there). Without a shared fs the agent creates it on its own tmpfs.
  const mountPoint = joinGuest(GUEST_SHARE_DIR, PASSTHROUGH, ctx.containerId, ROOTFS);
  if (mountPoint.isErr()) return fail(ctx.containerId, mountPoint.error.message);
  const onHost = joinHost(ctx.sharedRw, PASSTHROUGH, ctx.containerId, ROOTFS);
  if (onHost.isErr()) return fail(ctx.containerId, onHost.error.message);
  const sharedMountPoint =
    ctx.sharedFs === 'none'
      ? {}
      : { sharedMountPoint: { path: onHost.value, kind: 'dir' as const } };
  const storageOptions =
    m.type === XFS && !options.includes('nouuid') ? [...options, 'nouuid'] : options;
  return ok({
    kind: 'block',
    guestPath: mountPoint.value,
    blockDevice: dev.value,
    ...sharedMountPoint,
    storages: [
      {
        driver: dev.value.agentDriver,
        source: source.value,
        fstype: m.type,
        options: storageOptions,
        mountPoint: mountPoint.value,
      },
    ],
  });
}

/**
 * runtime-rs `is_block_rootfs`: a block device (source cleared, resolved by major:minor through
 * host facts) or a regular file with `loop` (the blockfile snapshotter; `loop` removed). Null: not block.
 */
function blockSource(
  m: RootfsMount,
  host: HostFacts,
): { pathOnHost: string | null; options: string[]; rdev?: string } | null {
  if (m.source === '') return null;
  const fact = pathFact(host, m.source);
  if (fact.kind === 'block' && fact.rdev !== undefined) {
    const rdev = `${fact.rdev.major}:${fact.rdev.minor}`;
    return { pathOnHost: host.blockDevices[rdev]?.path ?? null, options: [...m.options], rdev };
  }
  if (fact.kind === 'file' && m.options.includes('loop')) {
    return {
      pathOnHost: fact.realpath ?? m.source,
      options: m.options.filter((o) => o !== 'loop'),
    };
  }
  return null;
}

/** Plans the rootfs of one container. */
export function planRootfs(ctx: RootfsContext): Result<RootfsPlan, Problem> {
  const mounts: readonly RootfsMount[] = ctx.forceGuestPull
    ? [{ type: '', source: '', options: [FORCE_GUEST_PULL_OPTION] }]
    : ctx.mounts;
  const field = ctx.forceGuestPull
    ? FORCE_GUEST_PULL
    : mounts.length === 1
      ? 'rootfs-mounts[0]'
      : 'rootfs-mounts';
  const fail = (value: unknown, what: string): Result<RootfsPlan, Problem> =>
    err(problem('mount', ctx.mountsSource, field, value, what));
  const rootDir = path.posix.resolve(ctx.bundlePath, ctx.rootPath);

  if (mounts.length === 0) return sharedRootfs(ctx, rootDir, undefined, fail);
  if (mounts.length > 1)
    return fail(mounts.length, `unsupported rootfs mounts count ${mounts.length}`);
  const m = mounts[0]!;

  const option = virtualVolumeOption(m.options);
  if (option !== undefined) {
    const volume = decodeVirtualVolume(option.slice(KATA_VIRTUAL_VOLUME_PREFIX.length));
    if (volume.isErr()) return fail(option, volume.error);
    const planned = planVirtualVolumeRootfs(ctx.containerId, volume.value, ctx.annotations);
    if (planned.isErr()) return fail(option, planned.error);
    return ok({
      kind: 'guest-pull',
      guestPath: planned.value.guestRootfs,
      storages: [planned.value.storage],
    });
  }

  const block = blockSource(m, ctx.host);
  if (block !== null) {
    if (block.pathOnHost === null)
      return fail(m.source, `no host block device ${block.rdev} for ${m.source}`);
    return blockRootfs(ctx, m, block.pathOnHost, block.options, fail);
  }
  if (m.type === 'fuse.nydus-overlayfs')
    return fail(m.type, 'nydus rootfs (fuse.nydus-overlayfs) is not supported by kata-ts');
  if (m.options.includes('loop'))
    return fail(
      m.source,
      `a loop rootfs must be a regular file: ${m.source} is ${pathFact(ctx.host, m.source).kind}`,
    );
  const target = hostPath(path.posix.join(ctx.bundlePath, ROOTFS));
  if (target.isErr()) return fail(ctx.bundlePath, target.error.message);
  return sharedRootfs(
    ctx,
    target.value,
    { type: m.type, source: m.source, options: [...m.options], target: target.value },
    fail,
  );
}

/** `[runtime] experimental` holds `force_guest_pull`, or `experimental_force_guest_pull = true` (runtime-go). */
export function forceGuestPullEnabled(runtime: {
  readonly experimental: readonly string[];
  readonly experimentalForceGuestPull: boolean;
}): boolean {
  return (
    runtime.experimentalForceGuestPull ||
    runtime.experimental.map((s) => s.trim()).includes(FORCE_GUEST_PULL)
  );
}
