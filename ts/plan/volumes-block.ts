// Block volumes (a bind mount whose source is a host block device) and `linux.devices` of type
// `b`: hot-plugged with the configured driver; the agent gets a Storage (volumes) or a Device
// (container devices). Options per runtime-rs HEAD `volume/utils.rs` (vectors §1.8).
import { err, ok, type Result } from 'neverthrow';
import type { Problem } from '../errors.js';
import { hostPath, joinGuest } from '../paths.js';
import type { OciLinuxDevice, OciMount } from '../spec/oci-spec.js';
import {
  agentDeviceId,
  storageSource,
  type BlockDevice,
  type BlockDevicePlanner,
} from './devices.js';
import { sharedMountPoint, type HostDirs, type SharedMountPoint } from './host-dirs.js';
import type { HostFacts } from './host-facts.js';
import { pathFact } from './host-facts.js';
import type { DeviceInit, StorageInit } from './volumes-storage.js';
import {
  destinationName,
  GUEST_SHARE_DIR,
  mountProblem,
  PASSTHROUGH,
  type RandomHex,
} from './volumes-paths.js';

/** runtime-rs `DEFAULT_VOLUME_FS_TYPE`. */
export const DEFAULT_VOLUME_FS_TYPE = 'ext4';

const isBind = (o: string) => o === 'bind' || o === 'rbind';

/** OCI options of a rewritten bind: OCI options, then volume options, then `bind` when neither bind nor rbind is present. */
export function buildBindMountOptions(
  volumeOptions: readonly string[],
  ociOptions: readonly string[],
): string[] {
  const all = [...ociOptions, ...volumeOptions];
  return all.some(isBind) ? all : [...all, 'bind'];
}

/** Storage options of a block volume: bind/rbind removed. */
export function filterBlockStorageOptions(options: readonly string[]): string[] {
  return options.filter((o) => !isBind(o));
}

/** A bind mount of a host block device (stat says block device). */
export function isBlockVolume(m: OciMount, host: HostFacts): boolean {
  return m.type === 'bind' && m.source !== undefined && pathFact(host, m.source).kind === 'block';
}

export interface BlockVolume {
  readonly device: BlockDevice;
  readonly storage: StorageInit;
  readonly mount: OciMount;
  /** The mount point made on the host in the rw shared dir (runtime-rs `generate_shared_path`). */
  readonly sharedMountPoint: SharedMountPoint;
}

/** Attaches the device and mounts it in the guest under the share dir's `passthrough/`. */
export function planBlockVolume(
  m: OciMount,
  index: number,
  specSource: string,
  host: HostFacts,
  devices: BlockDevicePlanner,
  random: RandomHex,
  dirs: Pick<HostDirs, 'sharedRw'>,
): Result<BlockVolume, Problem[]> {
  const field = `mounts[${index}]`;
  const fail = (value: unknown, what: string) =>
    err([mountProblem(specSource, field, value, what)]);
  const source = m.source ?? '';
  const fact = pathFact(host, source);
  const known =
    fact.rdev === undefined
      ? undefined
      : host.blockDevices[`${fact.rdev.major}:${fact.rdev.minor}`];
  const ociOptions = m.options ?? [];
  const readOnly = ociOptions.includes('ro') || known?.readOnly === true;
  const path = hostPath(fact.realpath ?? source);
  if (path.isErr()) return fail(source, path.error.message);
  const name = destinationName(m.destination);
  if (name.isErr()) return fail(m.destination, name.error);

  const dev = devices.allocate({ pathOnHost: path.value, readOnly, hotplug: true });
  if (dev.isErr())
    return err(
      dev.error.problems.map((p) =>
        mountProblem(specSource, field, source, `cannot attach ${source}: ${p.message}`),
      ),
    );
  const src = storageSource(dev.value.agentDriver, dev.value);
  if (src.isErr()) return fail(source, src.error.message);
  const mountName = `${dev.value.id.slice(0, 10)}-${random(4)}-${name.value}`;
  const mountPoint = joinGuest(GUEST_SHARE_DIR, PASSTHROUGH, mountName);
  if (mountPoint.isErr()) return fail(m.destination, mountPoint.error.message);
  const onHost = sharedMountPoint(dirs, PASSTHROUGH, mountName, m.destination);
  if (onHost.isErr()) return fail(m.destination, onHost.error.message);

  const options = filterBlockStorageOptions(ociOptions);
  if (readOnly && !options.includes('ro')) options.push('ro');
  const toDev = m.destination.startsWith('/dev');
  return ok({
    device: dev.value,
    storage: {
      driver: dev.value.agentDriver,
      source: src.value,
      fstype: toDev ? 'bind' : DEFAULT_VOLUME_FS_TYPE,
      options,
      mountPoint: mountPoint.value,
    },
    mount: {
      ...m,
      type: 'bind',
      source: mountPoint.value,
      options: buildBindMountOptions([], ociOptions),
    },
    sharedMountPoint: onHost.value,
  });
}

/** The agent Device for a `linux.devices` block device (reference 4c386b51d9). */
export function containerDevice(d: OciLinuxDevice, dev: BlockDevice): DeviceInit {
  return {
    id: agentDeviceId(dev),
    type: dev.agentDriver,
    vmPath: dev.virtPath,
    containerPath: d.path,
  };
}
