// The hypervisor section's grouped settings: boot assets, block devices, shared filesystem and
// initdata, each with Kata's adjust/validate rules (ts/config/parse-config.ts reads the rest).
import type { HypervisorConfig } from './kata-config.js';
import * as rules from './config-rules.js';
import type { HypervisorSection } from './config-schema.js';
import { taker, type Reader } from './config-reader.js';

type Hv = HypervisorConfig;

/** Image or initrd, not both. A file naming an initrd but no image boots the initrd: the template's image must not linger. */
export function readBootAssets(
  r: Reader,
  prefix: string,
  h: HypervisorSection,
  d: Hv,
): Pick<Hv, 'image' | 'initrd'> {
  const take = taker(r, prefix);
  const initrd = take('initrd', h.initrd, d.initrd, rules.absolutePathOrEmpty, '');
  const image = take('image', h.image, initrd !== '' ? '' : d.image, rules.absolutePathOrEmpty, '');
  r.check(`${prefix}.image`, image, rules.bootAssets(image, initrd), undefined);
  return { image, initrd };
}

type BlockFields =
  | 'blockDeviceDriver'
  | 'blockDeviceAio'
  | 'blockDeviceCacheDirect'
  | 'blockDeviceCacheSet'
  | 'blockDeviceCacheNoflush'
  | 'blockDeviceLogicalSectorSize'
  | 'blockDevicePhysicalSectorSize'
  | 'disableBlockDeviceUse';

/** Block device settings. Kata skips every check when block devices are disabled (BlockDeviceInfo::adjust_config). */
export function readBlockDevices(
  r: Reader,
  prefix: string,
  h: HypervisorSection,
  d: Hv,
): Pick<Hv, BlockFields> {
  const disabled = h.disable_block_device_use ?? d.disableBlockDeviceUse;
  const take = taker(r, prefix, disabled);
  const logicalKey = 'block_device_logical_sector_size';
  const logical = take(
    logicalKey,
    h.block_device_logical_sector_size,
    d.blockDeviceLogicalSectorSize,
    rules.sectorSize,
    0,
  );
  const physicalKey = 'block_device_physical_sector_size';
  const physical = take(
    physicalKey,
    h.block_device_physical_sector_size,
    d.blockDevicePhysicalSectorSize,
    rules.sectorSize,
    0,
  );
  take(logicalKey, logical, logical, (l) => rules.sectorOrder(l, physical), undefined);
  return {
    blockDeviceDriver: take(
      'block_device_driver',
      h.block_device_driver,
      d.blockDeviceDriver,
      rules.blockDriver,
      'virtio-blk-pci',
    ),
    blockDeviceAio: take(
      'block_device_aio',
      h.block_device_aio,
      d.blockDeviceAio,
      rules.blockAio,
      'io_uring',
    ),
    blockDeviceCacheDirect: h.block_device_cache_direct ?? d.blockDeviceCacheDirect,
    blockDeviceCacheSet: h.block_device_cache_set ?? d.blockDeviceCacheSet,
    blockDeviceCacheNoflush: h.block_device_cache_noflush ?? d.blockDeviceCacheNoflush,
    blockDeviceLogicalSectorSize: logical,
    blockDevicePhysicalSectorSize: physical,
    disableBlockDeviceUse: disabled,
  };
}

type SharedFsFields =
  'sharedFs' | 'virtioFsDaemon' | 'virtioFsExtraArgs' | 'virtioFsCache' | 'virtioFsCacheSizeMiB';

/** Shared filesystem settings; the cache mode is checked only for virtio-fs kinds (SharedFsInfo::validate). */
export function readSharedFs(
  r: Reader,
  prefix: string,
  h: HypervisorSection,
  d: Hv,
): Pick<Hv, SharedFsFields> {
  const take = taker(r, prefix);
  const sharedFs = take('shared_fs', h.shared_fs, d.sharedFs, rules.sharedFs, d.sharedFs);
  const cache = h.virtio_fs_cache ?? d.virtioFsCache;
  if (cache === 'none')
    r.warn(`${prefix}.virtio_fs_cache: "none" is deprecated since Kata 2.5, use "never"`);
  const usesVirtioFs = sharedFs === 'virtio-fs' || sharedFs === 'virtio-fs-nydus';
  return {
    sharedFs,
    virtioFsDaemon: take(
      'virtio_fs_daemon',
      h.virtio_fs_daemon,
      d.virtioFsDaemon,
      rules.absolutePathOrEmpty,
      '',
    ),
    virtioFsExtraArgs: h.virtio_fs_extra_args ?? d.virtioFsExtraArgs,
    virtioFsCache: usesVirtioFs
      ? take('virtio_fs_cache', h.virtio_fs_cache, d.virtioFsCache, rules.virtioFsCache, 'never')
      : cache,
    virtioFsCacheSizeMiB: h.virtio_fs_cache_size ?? d.virtioFsCacheSizeMiB,
  };
}

/** `initdata` flat in the section (Kata's layout) or under `security_info`; both set must agree. */
export function readInitdata(
  r: Reader,
  prefix: string,
  flat: string | undefined,
  nested: string | undefined,
): string {
  if (flat !== undefined && nested !== undefined && flat !== nested) {
    r.fail(
      `${prefix}.security_info.initdata`,
      nested,
      `conflicts with ${prefix}.initdata; set it once`,
    );
  }
  return nested ?? flat ?? '';
}
