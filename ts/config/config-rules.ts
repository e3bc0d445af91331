// Semantic rules for configuration values, one small function each. They take a value already of
// the right TOML type and return the adjusted value (Kata's `adjust_config`) or a message
// (Kata's `validate`). Callers attach the key: config keys here, annotation keys in
// spec/annotations.ts. Messages quote Kata's where Kata has one.
import { err, ok, type Result } from 'neverthrow';
import {
  BLOCK_AIO_MODES,
  BLOCK_DRIVERS,
  SHARED_FS_KINDS,
  type BlockAio,
  type BlockDriver,
  type SharedFs,
} from './kata-config.js';
import { clipValue, quoteValue } from '../input/escape-text.js';
import {
  MAX_QEMU_VCPUS,
  MIN_QEMU_MEMORY_MIB,
  QEMU_DEFAULT_MEMORY_SLOTS,
  QEMU_ZERO_MEMORY_MIB,
} from './config-defaults.js';

export type Rule<T> = Result<T, string>;

function oneOf<T extends string>(allowed: readonly T[], value: string): value is T {
  return (allowed as readonly string[]).includes(value);
}

function allowedList(allowed: readonly string[]): string {
  return `allowed: ${allowed.join(', ')}`;
}

/** `block_device_driver`: "" → virtio-blk-pci (kata-types DEFAULT_BLOCK_DEVICE_TYPE). */
export function blockDriver(value: string): Rule<BlockDriver> {
  if (value === '') return ok('virtio-blk-pci');
  if (oneOf(BLOCK_DRIVERS, value)) return ok(value);
  return err(`${clipValue(value)} is unsupported block device type. ${allowedList(BLOCK_DRIVERS)}`);
}

/** `block_device_aio`: "" → io_uring (kata-types DEFAULT_BLOCK_DEVICE_AIO). */
export function blockAio(value: string): Rule<BlockAio> {
  if (value === '') return ok('io_uring');
  if (oneOf(BLOCK_AIO_MODES, value)) return ok(value);
  return err(
    `${clipValue(value)} is unsupported block device AIO mode. ${allowedList(BLOCK_AIO_MODES)}`,
  );
}

/** Sector sizes: 0 (hypervisor default) or a power of two in [512, 65536]. */
export function sectorSize(value: number): Rule<number> {
  if (value === 0) return ok(0);
  const powerOfTwo = Number.isInteger(Math.log2(value));
  if (value < 512 || value > 65536 || !powerOfTwo) {
    return err(`invalid sector size ${value}: must be 0 or a power of 2 between 512 and 65536`);
  }
  return ok(value);
}

/** Logical sector size must not exceed the physical one, unless either is 0. */
export function sectorOrder(logical: number, physical: number): Rule<void> {
  if (logical !== 0 && physical !== 0 && logical > physical) {
    return err(
      `invalid sector sizes: logical (${logical}) must not be larger than physical (${physical})`,
    );
  }
  return ok(undefined);
}

/** `shared_fs`: "" → virtio-fs (kata-types DEFAULT_SHARED_FS_TYPE). */
export function sharedFs(value: string): Rule<SharedFs> {
  if (value === '') return ok('virtio-fs');
  if (oneOf(SHARED_FS_KINDS, value)) return ok(value);
  return err(`Invalid shared_fs type ${clipValue(value)}; ${allowedList(SHARED_FS_KINDS)}`);
}

const VIRTIO_FS_CACHE_MODES = ['never', 'auto', 'always'] as const;

/** `virtio_fs_cache`: "" → never; deprecated `none` → never (kata-types adjust_virtio_fs). */
export function virtioFsCache(value: string): Rule<string> {
  if (value === '' || value === 'none') return ok('never');
  if (oneOf(VIRTIO_FS_CACHE_MODES, value)) return ok(value);
  return err(
    `Invalid virtio-fs cache mode: ${clipValue(value)}; ${allowedList(VIRTIO_FS_CACHE_MODES)}`,
  );
}

const DECIMAL_TEXT = /^(\d+(\.\d*)?|\.\d+)$/;

/**
 * `default_vcpus` as exact decimal text. A TOML float arrives as a JS number; its shortest
 * round-trip text (`String(0.1)` = "0.1") is the decimal the user wrote. Exponent forms, negative
 * numbers and non-finite values are refused; 0 becomes 1 (kata-types DEFAULT_GUEST_VCPUS).
 */
export function vcpuDecimalText(value: number | string): Rule<string> {
  return decimalText(value).map((t) => (Number(t) === 0 ? '1' : t));
}

/** `overhead_vcpus`: exact decimal text like `default_vcpus`, where 0 stays 0. */
export function overheadVcpuText(value: number | string): Rule<string> {
  return decimalText(value);
}

function decimalText(value: number | string): Rule<string> {
  const textValue = typeof value === 'number' ? String(value) : value.trim();
  if (typeof value === 'number' && !Number.isFinite(value))
    return err(`${clipValue(textValue)} is not a finite number`);
  if (textValue.startsWith('-')) return err(`${clipValue(textValue)} must not be negative`);
  if (/e/i.test(textValue))
    return err(
      `${clipValue(textValue)}: write the amount as a plain decimal, not in exponent form`,
    );
  if (!DECIMAL_TEXT.test(textValue) || textValue.length > 64) {
    return err(`${quoteValue(textValue)} is not a decimal number such as 1 or 0.75`);
  }
  if (Number(textValue) > MAX_QEMU_VCPUS)
    return err(`Qemu hypervisor can not support ${clipValue(textValue)} vCPUs`);
  return ok(textValue);
}

/** `default_maxvcpus`: 0 means host CPUs; above MAX_QEMU_VCPUS is refused. */
export function maxVcpus(value: number): Rule<number> {
  return value > MAX_QEMU_VCPUS ? err(`Qemu hypervisor can not support ${value} vCPUs`) : ok(value);
}

/** `default_memory`: 0 → 128 MiB (qemu adjust_config); below 64 MiB refused (qemu validate). */
export function defaultMemory(valueMiB: number): Rule<number> {
  if (valueMiB === 0) return ok(QEMU_ZERO_MEMORY_MIB);
  if (valueMiB < MIN_QEMU_MEMORY_MIB)
    return err(`Qemu hypervisor has minimal memory limitation ${MIN_QEMU_MEMORY_MIB}`);
  return ok(valueMiB);
}

/** `memory_slots`: 0 → 128 (qemu adjust_config). */
export function memorySlots(value: number): Rule<number> {
  return ok(value === 0 ? QEMU_DEFAULT_MEMORY_SLOTS : value);
}

/** Root ports and switch ports are exclusive (kata-types DeviceInfo::validate). */
export function pciePorts(rootPorts: number, switchPorts: number): Rule<void> {
  return rootPorts > 0 && switchPorts > 0
    ? err('Root Port and Switch Port set at the same time is forbidden.')
    : ok(undefined);
}

const VFIO_PORTS = ['no-port', 'bridge-port', 'root-port', 'switch-port'] as const;

/** `hot_plug_vfio` / `cold_plug_vfio`: "" → no-port. */
export function vfioPort(value: string): Rule<string> {
  if (value === '') return ok('no-port');
  if (oneOf(VFIO_PORTS, value)) return ok(value);
  return err(`invalid VFIO port ${clipValue(value)}; ${allowedList(VFIO_PORTS)}`);
}

const NETWORK_MODELS = ['macvtap', 'none', 'tcfilter', 'l3forwarding'] as const;

/** `internetworking_model`: "" → tcfilter (kata-types DEFAULT_INTERNETWORKING_MODEL). */
export function internetworkingModel(value: string): Rule<string> {
  if (value === '') return ok('tcfilter');
  if (oneOf(NETWORK_MODELS, value)) return ok(value);
  return err(
    `Invalid internetworking_model \`${clipValue(value)}\`; ${allowedList(NETWORK_MODELS)}`,
  );
}

const VFIO_MODES = ['vfio', 'guest-kernel'] as const;

/** `vfio_mode`: "" → guest-kernel (Makefile DEFVFIOMODE). */
export function vfioMode(value: string): Rule<string> {
  if (value === '') return ok('guest-kernel');
  if (oneOf(VFIO_MODES, value)) return ok(value);
  return err(`Invalid vfio_mode \`${clipValue(value)}\`; ${allowedList(VFIO_MODES)}`);
}

/** A host path that must be absolute when set (Kata resolves it on the host; the parser only checks the form). */
export function absolutePathOrEmpty(value: string): Rule<string> {
  if (value === '' || value.startsWith('/')) return ok(value);
  return err(`${quoteValue(value)} must be an absolute path`);
}

/** Like absolutePathOrEmpty, but the path is required. */
export function absolutePath(value: string): Rule<string> {
  return value === '' ? err('must not be empty') : absolutePathOrEmpty(value);
}

/** Each `enable_annotations` entry must be a valid regular expression. */
export function annotationPatterns(patterns: readonly string[]): Rule<readonly string[]> {
  for (const p of patterns) {
    try {
      new RegExp(p);
    } catch (e) {
      return err(
        `invalid regular expression ${quoteValue(p)}: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
  }
  return ok(patterns);
}

/**
 * Whether a hypervisor annotation key (the part after `io.katacontainers.config.hypervisor.`) is
 * enabled. Kata (kata-types SecurityInfo::is_annotation_enabled, runtime-go
 * checkAnnotationNameIsValid) matches each pattern anywhere in the key, unanchored; a list with
 * an invalid pattern enables nothing (runtime-rs's RegexSet::new fails as a whole).
 */
export function annotationEnabled(patterns: readonly string[], key: string): boolean {
  try {
    const compiled = patterns.map((p) => new RegExp(p));
    return compiled.some((re) => re.test(key));
  } catch {
    return false;
  }
}

/** A boot setup needs an image or an initrd, and not both (kata-types BootInfo/qemu validate). */
export function bootAssets(image: string, initrd: string): Rule<void> {
  if (image !== '' && initrd !== '') return err('Can not configure both initrd and image for boot');
  if (image === '' && initrd === '')
    return err('Both guest boot image and initrd for qemu are empty');
  return ok(undefined);
}
