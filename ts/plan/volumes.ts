// Container mounts → volumes, in the reference's handler order (runtime-rs `handler_volumes`,
// reference §8): shm, ephemeral (incl. memory-backed emptyDir), block, shared-fs (virtio-fs bind
// or, with shared_fs = none, copy), default. Each mount yields its rewritten OCI mount and maybe
// a Storage, a block device, a copy step or a shared-fs bind. Nothing is silently dropped.
import { err, ok, type Result } from 'neverthrow';
import type { SharedFs } from '../config/kata-config.js';
import { planError, type PlanError, type Problem } from '../errors.js';
import type { OciMount, OciSpec } from '../spec/oci-spec.js';
import { planCopyVolume, type CopyStep } from './copy-volume.js';
import type { BlockDevice, BlockDevicePlanner } from './devices.js';
import type { HostDirs, SharedMountPoint } from './host-dirs.js';
import { pathFact, type HostFacts } from './host-facts.js';
import { isEphemeralMount, isShmMount, planEphemeralVolume, shmMount } from './shm.js';
import type { VolumeManager } from './volume-manager.js';
import { isBlockVolume, planBlockVolume } from './volumes-block.js';
import { mountProblem, PASSTHROUGH, type RandomHex } from './volumes-paths.js';
import type { SharedFsBind, SharedFsVolumes } from './volumes-shared-fs.js';
import type { StorageInit } from './volumes-storage.js';
import { isWatchableMount, watchableStorage, WATCHABLE_DIR } from './volumes-watchable.js';
import { joinHost } from '../paths.js';
import { basename } from 'node:path/posix';

export type VolumeKind = 'shm' | 'ephemeral' | 'block' | 'shared-fs' | 'copy' | 'default';

export interface VolumeContext {
  readonly specSource: string;
  readonly containerId: string;
  readonly sharedFs: SharedFs;
  readonly kubeletRootDir: string;
  readonly allowAnyCopyDirectory: boolean;
  readonly host: HostFacts;
  readonly devices: BlockDevicePlanner;
  readonly copies: VolumeManager;
  readonly shared: SharedFsVolumes;
  readonly random: RandomHex;
  readonly hostDirs: Pick<HostDirs, 'sharedRw'>;
}

export interface VolumePlan {
  /** The OCI mounts the agent gets, in spec order. */
  readonly mounts: readonly OciMount[];
  /** What each spec mount became, by index. */
  readonly kinds: readonly VolumeKind[];
  /** Volume Storages in mount order. */
  readonly storages: readonly StorageInit[];
  readonly blockDevices: readonly BlockDevice[];
  readonly copies: readonly CopyStep[];
  readonly sharedFsBinds: readonly SharedFsBind[];
  /** Block-volume mount points to create in the rw shared dir, in mount order (none without a shared fs). */
  readonly sharedMountPoints: readonly SharedMountPoint[];
}

/** runtime-rs `is_system_mount`: `/sys`, `/proc`, or a path containing `/sys/` or `/proc/` (sic: any depth). */
export function isSystemMount(source: string): boolean {
  return (
    source === '/sys' || source === '/proc' || source.includes('/sys/') || source.includes('/proc/')
  );
}

/** runtime-rs `is_host_device(dest)`: `/dev`, or a `/dev/…` path that exists on the host and is not a regular file. */
export function isHostDevice(dest: string, host: HostFacts): boolean {
  if (dest === '/dev') return true;
  if (!dest.startsWith('/dev/')) return false;
  const kind = pathFact(host, dest).kind;
  return kind !== 'missing' && kind !== 'file';
}

/** runtime-rs `is_share_fs_volume`. */
function isSharedFsVolume(m: OciMount, host: HostFacts): boolean {
  return m.type === 'bind' && !isHostDevice(m.destination, host) && !isSystemMount(m.source ?? '');
}

interface Acc {
  mounts: OciMount[];
  kinds: VolumeKind[];
  storages: StorageInit[];
  blockDevices: BlockDevice[];
  copies: CopyStep[];
  sharedFsBinds: SharedFsBind[];
  sharedMountPoints: SharedMountPoint[];
}

function planSharedFsVolume(
  m: OciMount,
  index: number,
  ctx: VolumeContext,
  acc: Acc,
): Problem | null {
  const source = m.source ?? '';
  const fact = pathFact(ctx.host, source);
  if (fact.kind === 'missing')
    return mountProblem(
      ctx.specSource,
      `mounts[${index}]`,
      source,
      `mount source ${source} does not exist on the host`,
    );
  const bind = ctx.shared.acquire(
    fact.realpath ?? source,
    (m.options ?? []).includes('ro'),
    ctx.random,
  );
  if (bind.isErr()) return mountProblem(ctx.specSource, `mounts[${index}]`, source, bind.error);
  acc.sharedFsBinds.push(bind.value);
  let guestPath: string = bind.value.guestPath;
  if (isWatchableMount(source, fact)) {
    const watchable = watchableStorage(bind.value.guestPath, m.options ?? []);
    if (watchable.isErr())
      return mountProblem(ctx.specSource, `mounts[${index}]`, source, watchable.error);
    acc.storages.push(watchable.value.storage);
    guestPath = watchable.value.guestPath;
    // The mount point lies in the guest's read-only view of the share: made on the host in rw.
    const onHost = joinHost(ctx.hostDirs.sharedRw, PASSTHROUGH, WATCHABLE_DIR, basename(guestPath));
    if (onHost.isErr())
      return mountProblem(ctx.specSource, `mounts[${index}]`, source, onHost.error.message);
    acc.sharedMountPoints.push({ path: onHost.value, kind: fact.kind === 'dir' ? 'dir' : 'file' });
  }
  acc.mounts.push({ ...m, type: 'bind', source: guestPath, options: [...(m.options ?? [])] });
  acc.kinds.push('shared-fs');
  return null;
}

function planOne(m: OciMount, index: number, ctx: VolumeContext, acc: Acc): Problem[] {
  const field = `mounts[${index}]`;
  if (m.destination.split('/').every((s) => s === ''))
    return [
      mountProblem(
        ctx.specSource,
        `${field}.destination`,
        m.destination,
        'a mount destination of / is not allowed',
      ),
    ];
  if (isShmMount(m)) {
    acc.mounts.push(shmMount(m));
    acc.kinds.push('shm');
    return [];
  }
  if (isEphemeralMount(m, ctx.host)) {
    const v = planEphemeralVolume(m, index, ctx.specSource, ctx.host);
    if (v.isErr()) return [v.error];
    acc.storages.push(v.value.storage);
    acc.mounts.push(v.value.mount);
    acc.kinds.push('ephemeral');
    return [];
  }
  if (isBlockVolume(m, ctx.host)) {
    const v = planBlockVolume(
      m,
      index,
      ctx.specSource,
      ctx.host,
      ctx.devices,
      ctx.random,
      ctx.hostDirs,
    );
    if (v.isErr()) return v.error;
    acc.blockDevices.push(v.value.device);
    acc.storages.push(v.value.storage);
    acc.mounts.push(v.value.mount);
    // The host mount point only matters where the shared dir is mounted (virtio-fs).
    if (ctx.sharedFs !== 'none') acc.sharedMountPoints.push(v.value.sharedMountPoint);
    acc.kinds.push('block');
    return [];
  }
  if (isSharedFsVolume(m, ctx.host)) {
    if (ctx.sharedFs !== 'none') {
      const p = planSharedFsVolume(m, index, ctx, acc);
      return p === null ? [] : [p];
    }
    const v = planCopyVolume(m, index, { ...ctx, manager: ctx.copies });
    if (v.isErr()) return [v.error];
    acc.copies.push(v.value.copy);
    acc.mounts.push(v.value.mount);
    acc.kinds.push('copy');
    return [];
  }
  acc.mounts.push(m);
  acc.kinds.push('default');
  return [];
}

/** Plans every mount of one container; reports every bad mount. */
export function planVolumes(spec: OciSpec, ctx: VolumeContext): Result<VolumePlan, PlanError> {
  const acc: Acc = {
    mounts: [],
    kinds: [],
    storages: [],
    blockDevices: [],
    copies: [],
    sharedFsBinds: [],
    sharedMountPoints: [],
  };
  const problems = spec.mounts.flatMap((m, i) => planOne(m, i, ctx, acc));
  return problems.length > 0 ? err(planError(...problems)) : ok(acc);
}
