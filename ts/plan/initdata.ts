// Initdata in the plan: validated TOML → digest for the platform, the disk image bytes, where the
// image is written on the host, and the read-only cold-plugged block device that carries it.
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError } from '../errors.js';
import type { BlockDriver, HypervisorConfig } from '../config/kata-config.js';
import { hostPath, joinHost, type HostPath } from '../paths.js';
import type { BlockDevice, BlockDevicePlanner } from './block-devices.js';
import { HOST_INITDATA_DIR } from './host-dirs.js';
import {
  CONFIG_INITDATA_ORIGIN,
  initdataDigest,
  parseInitdata,
  type InitdataAlgorithm,
  type InitdataOrigin,
  type ProtectedPlatform,
} from './initdata-digest.js';
import { buildInitdataImage } from './initdata-image.js';

export * from './initdata-digest.js';
export * from './initdata-image.js';

/** The annotation that carries base64(gzip(initdata TOML)); decoded before planning. */
export const INITDATA_ANNOTATION = 'io.katacontainers.config.hypervisor.cc_init_data';

/** Host directory of initdata images, below the rootless dir when rootless. */
export const INITDATA_HOST_DIR = HOST_INITDATA_DIR;
export const INITDATA_IMAGE_NAME = 'initdata.image';

export interface InitdataPlan {
  /** base64 digest shaped for the platform (TDX mrconfigid, SNP host_data, …). */
  readonly digest: string;
  readonly algorithm: InitdataAlgorithm;
  readonly platform: ProtectedPlatform;
  readonly imageBytes: number;
  /** The image to write (mode 0o600, atomically) at `hostPath`. */
  readonly imageBase64: string;
  readonly hostPath: HostPath;
  readonly driver: BlockDriver;
  /** Cold-plugged, read-only, with the configured driver and AIO mode. */
  readonly device: BlockDevice;
}

export interface InitdataOptions {
  /** Where the TOML came from (config key or the annotation); defaults to `hypervisor.qemu.initdata`. */
  readonly origin?: InitdataOrigin;
  /** Rootless runtime dir (`/run/user/<uid>`) that prefixes host paths. */
  readonly rootlessDir?: HostPath;
  /** The sandbox's initdata dir (`HostDirs.initdata`); wins over `rootlessDir`. */
  readonly dir?: HostPath;
}

/** `<rootless dir>/run/kata-containers/shared/initdata/<sid>/initdata.image`. */
export function initdataHostPath(
  sandboxId: string,
  rootlessDir?: HostPath,
): Result<HostPath, PlanError> {
  const base = hostPath(path.posix.join(rootlessDir ?? '/', INITDATA_HOST_DIR));
  return base
    .andThen((dir) => joinHost(dir, sandboxId, INITDATA_IMAGE_NAME))
    .mapErr((e) => planError(problem('plan', 'sandbox', 'sandbox id', sandboxId, e.message)));
}

/**
 * Plans the initdata device; ok(null) when there is no initdata. Unlike the reference (which
 * hard-codes aio=native for this disk and then, on QEMU cold-plug, silently uses threads), the
 * device takes the configured AIO mode like every other block device.
 */
export function planInitdata(
  config: Pick<HypervisorConfig, 'initdata'>,
  platform: ProtectedPlatform,
  devices: BlockDevicePlanner,
  sandboxId: string,
  options: InitdataOptions = {},
): Result<InitdataPlan | null, PlanError> {
  const raw = config.initdata;
  if (raw === '') return ok(null);
  const parsed = parseInitdata(raw, options.origin ?? CONFIG_INITDATA_ORIGIN);
  if (parsed.isErr()) return err(parsed.error);
  const image = buildInitdataImage(raw);
  if (image === null) return ok(null);
  const where =
    options.dir !== undefined
      ? joinHost(options.dir, INITDATA_IMAGE_NAME).mapErr((e) =>
          planError(problem('plan', 'sandbox', 'sandbox id', sandboxId, e.message)),
        )
      : initdataHostPath(sandboxId, options.rootlessDir);
  if (where.isErr()) return err(where.error);
  const device = devices.allocate({ pathOnHost: where.value, readOnly: true, hotplug: false });
  if (device.isErr()) return err(device.error);
  const { algorithm } = parsed.value;
  return ok({
    digest: initdataDigest(raw, algorithm, platform),
    algorithm,
    platform,
    imageBytes: image.length,
    imageBase64: Buffer.from(image).toString('base64'),
    hostPath: where.value,
    driver: device.value.driver,
    device: device.value,
  });
}
