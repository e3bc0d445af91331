// QMP operations on a running VM: block hot-plug/unplug of planned devices, the PCI path a
// device got, vCPU hot-plug for resizing. Arguments follow runtime-rs `qemu/qmp.rs`
// (`hotplug_block_device`) and vectors.md §1.1.
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import type { BlockDevice } from '../plan/block-devices.js';
import { blockBackendDriver, parseScsiAddr } from './cmdline.js';
import type { QmpClient, QmpError } from './qmp-client.js';

export type HotplugError =
  | QmpError
  | { readonly kind: 'hotplug-unsupported'; readonly device: string; readonly message: string }
  | { readonly kind: 'hotplug-not-found'; readonly device: string; readonly message: string };

/** Where a hot-plugged block device landed. */
export interface PluggedBlock {
  readonly id: string;
  readonly pciPath?: string;
  readonly scsiAddr?: string;
}

/** `blockdev-add` arguments: raw over file / host_device with AIO, cache.direct and read-only. */
export function blockdevAddArgs(d: BlockDevice, isBlockDevice = false): Record<string, unknown> {
  return {
    driver: 'raw',
    'node-name': d.id,
    'read-only': d.readOnly,
    ...(d.readOnly ? { 'force-share': true } : {}),
    cache: { direct: d.directIo, 'no-flush': false },
    file: {
      driver: blockBackendDriver(d.pathOnHost, isBlockDevice),
      filename: d.pathOnHost,
      aio: d.aio,
    },
  };
}

/** `device_add` arguments for the planned device: scsi-hd on scsi0.0, or virtio-blk-pci on its port. */
export function deviceAddArgs(d: BlockDevice): Record<string, unknown> | HotplugError {
  const unsupported = (what: string): HotplugError => ({
    kind: 'hotplug-unsupported',
    device: d.id,
    message: `hot-plug ${d.id}: ${what}`,
  });
  switch (d.driver) {
    case 'virtio-scsi': {
      const scsi = d.scsiAddr === undefined ? null : parseScsiAddr(d.scsiAddr);
      if (scsi === null) return unsupported('virtio-scsi device without a SCSI address');
      return {
        driver: 'scsi-hd',
        bus: d.bus ?? 'scsi0.0',
        id: d.id,
        drive: d.id,
        'scsi-id': scsi.scsiId,
        lun: scsi.lun,
        ...(d.readOnly ? {} : { 'share-rw': true }),
      };
    }
    case 'virtio-blk-pci':
      if (d.bus === undefined || d.addr === undefined)
        return unsupported('virtio-blk-pci device without a planned port');
      return {
        driver: 'virtio-blk-pci',
        id: d.id,
        drive: d.id,
        bus: d.bus,
        addr: d.addr,
        ...(d.readOnly ? {} : { 'share-rw': true }),
      };
    default:
      return unsupported(`driver ${d.driver} cannot be hot-plugged on q35`);
  }
}

/** blockdev-add then device_add; the node is deleted again when device_add fails. */
export function hotplugBlock(
  qmp: QmpClient,
  d: BlockDevice,
  options: { isBlockDevice?: boolean; timeoutMs?: number } = {},
): ResultAsync<PluggedBlock, HotplugError> {
  const device = deviceAddArgs(d);
  if ('kind' in device) return errAsync(device as HotplugError);
  const t = { timeoutMs: options.timeoutMs };
  return qmp
    .execute('blockdev-add', blockdevAddArgs(d, options.isBlockDevice), t)
    .andThen(() =>
      qmp.execute('device_add', device as Record<string, unknown>, t).orElse((e) =>
        qmp
          .execute('blockdev-del', { 'node-name': d.id }, t)
          .orElse(() => okAsync(null))
          .andThen(() => errAsync<unknown, HotplugError>(e)),
      ),
    )
    .map(() => ({
      id: d.id,
      ...(d.pciPath !== undefined ? { pciPath: d.pciPath } : {}),
      ...(d.scsiAddr !== undefined ? { scsiAddr: d.scsiAddr } : {}),
    }));
}

/**
 * device_del, wait for DEVICE_DELETED, then blockdev-del. PCIe unplug under q35's ACPI hotplug
 * needs a running guest to acknowledge (≈0.1 s); scsi-hd goes at once.
 */
export function unplugBlock(
  qmp: QmpClient,
  id: string,
  timeoutMs = 10_000,
): ResultAsync<void, HotplugError> {
  const abandon = new AbortController();
  const deleted = qmp.waitForEvent(
    'DEVICE_DELETED',
    (data) => data.device === id,
    timeoutMs,
    abandon.signal,
  );
  return qmp
    .execute('device_del', { id }, { timeoutMs })
    .orElse((e) => {
      abandon.abort(); // no event will come for a refused device_del
      return errAsync<unknown, QmpError>(e);
    })
    .andThen(() => deleted)
    .andThen(() => qmp.execute('blockdev-del', { 'node-name': id }, { timeoutMs }))
    .map(() => undefined);
}

interface PciDeviceInfo {
  slot: number;
  function: number;
  qdev_id: string;
  pci_bridge?: { bus: { number: number }; devices?: PciDeviceInfo[] };
}

/** Slots from pcie.0 to the device with qdev id `id` in a `query-pci` answer; null when absent. */
export function findPciPath(
  buses: readonly { bus: number; devices: PciDeviceInfo[] }[],
  id: string,
): string | null {
  const walk = (devices: readonly PciDeviceInfo[], prefix: number[]): number[] | null => {
    for (const d of devices) {
      if (d.qdev_id === id) return [...prefix, d.slot];
      const below = d.pci_bridge?.devices;
      if (below) {
        const found = walk(below, [...prefix, d.slot]);
        if (found) return found;
      }
    }
    return null;
  };
  const root = buses.find((b) => b.bus === 0) ?? buses[0];
  const slots = root ? walk(root.devices, []) : null;
  return slots ? slots.map((s) => s.toString(16).padStart(2, '0')).join('/') : null;
}

/** The guest PCI path of a device from `query-pci`; devices behind bridges show up there only once firmware numbered the buses (peers.md). */
export function pciPathFromQueryPci(qmp: QmpClient, id: string): ResultAsync<string, HotplugError> {
  return qmp.execute<{ bus: number; devices: PciDeviceInfo[] }[]>('query-pci').andThen((buses) => {
    const path = findPciPath(buses, id);
    return path === null
      ? errAsync<string, HotplugError>({
          kind: 'hotplug-not-found',
          device: id,
          message: `query-pci: no device ${id} (devices behind bridges appear only after the guest firmware ran)`,
        })
      : okAsync(path);
  });
}

/** Longest bridge chain we follow (pcie.0 → root port → switch → device is 3 hops). */
const MAX_PCI_DEPTH = 8;

/**
 * The guest PCI path of a device from QOM: its `addr` (devfn) on its `parent_bus`, then the same
 * for the bridge owning that bus, up to pcie.0. Works in a paused VM, before firmware ran.
 */
export function pciPathFromQom(qmp: QmpClient, id: string): ResultAsync<string, HotplugError> {
  const notFound = (what: string): HotplugError => ({
    kind: 'hotplug-not-found',
    device: id,
    message: `PCI path of ${id}: ${what}`,
  });
  const step = async (qomPath: string, slots: number[]): Promise<number[]> => {
    if (slots.length > MAX_PCI_DEPTH) throw notFound('bridge chain too deep');
    const addr = await qmp.execute<number>('qom-get', { path: qomPath, property: 'addr' });
    if (addr.isErr())
      throw addr.error.kind === 'qmp-command' ? notFound(addr.error.desc) : addr.error;
    const bus = await qmp.execute<string>('qom-get', { path: qomPath, property: 'parent_bus' });
    if (bus.isErr()) throw bus.error;
    const here = [addr.value >> 3, ...slots];
    // A bridge's secondary bus is a child of the bridge device: `<bridge path>/<bus name>`.
    if (/\/pcie\.0$/.test(bus.value)) return here;
    const bridge = bus.value.slice(0, bus.value.lastIndexOf('/'));
    if (bridge === '') throw notFound(`unexpected parent bus ${bus.value}`);
    return step(bridge, here);
  };
  return ResultAsync.fromPromise(
    step(`/machine/peripheral/${id}`, []),
    (e) => e as HotplugError,
  ).map((slots) => slots.map((s) => s.toString(16).padStart(2, '0')).join('/'));
}

/** The PCI path: query-pci when the guest enumerated the device, QOM otherwise. */
export function pciPathOf(qmp: QmpClient, id: string): ResultAsync<string, HotplugError> {
  return pciPathFromQueryPci(qmp, id).orElse((e) =>
    e.kind === 'hotplug-not-found' ? pciPathFromQom(qmp, id) : errAsync(e),
  );
}

interface HotpluggableCpu {
  type: string;
  'vcpus-count': number;
  props: Record<string, number>;
  'qom-path'?: string;
}

/** The id we give hot-plugged vCPUs, so shrinking removes only ours. */
const vcpuId = (props: Record<string, number>) =>
  `vcpu-s${props['socket-id'] ?? 0}-c${props['core-id'] ?? 0}-t${props['thread-id'] ?? 0}`;

/**
 * Brings the number of present vCPUs to `target` (between the boot count and maxcpus) by
 * device_add / device_del of CPU devices; returns the new count. Shrinking removes only vCPUs
 * hot-plugged here, highest first, and needs the guest to release them (ACPI eject).
 */
export function resizeVcpus(
  qmp: QmpClient,
  target: number,
  timeoutMs = 10_000,
): ResultAsync<number, HotplugError> {
  return qmp
    .execute<HotpluggableCpu[]>('query-hotpluggable-cpus', undefined, { timeoutMs })
    .andThen((cpus) => {
      const present = cpus.filter((c) => c['qom-path'] !== undefined);
      if (target === present.length) return okAsync(present.length);
      if (target > cpus.length || target < 1) {
        return errAsync<number, HotplugError>({
          kind: 'hotplug-unsupported',
          device: 'vcpu',
          message: `resize vCPUs to ${target}: allowed 1..${cpus.length} (maxcpus)`,
        });
      }
      if (target > present.length) {
        // query-hotpluggable-cpus lists the highest ids first; add the lowest free ones first.
        const free = cpus
          .filter((c) => c['qom-path'] === undefined)
          .reverse()
          .slice(0, target - present.length);
        return free
          .reduce<ResultAsync<unknown, HotplugError>>(
            (acc, c) =>
              acc.andThen(() =>
                qmp.execute(
                  'device_add',
                  { driver: c.type, id: vcpuId(c.props), ...c.props },
                  { timeoutMs },
                ),
              ),
            okAsync(null),
          )
          .map(() => target);
      }
      const ours = present.filter((c) => c['qom-path']?.endsWith(`/${vcpuId(c.props)}`));
      const remove = ours.slice(0, present.length - target);
      if (remove.length < present.length - target) {
        return errAsync<number, HotplugError>({
          kind: 'hotplug-unsupported',
          device: 'vcpu',
          message: `resize vCPUs to ${target}: only ${ours.length} hot-plugged vCPUs can be removed`,
        });
      }
      return remove
        .reduce<ResultAsync<unknown, HotplugError>>((acc, c) => {
          const id = vcpuId(c.props);
          return acc.andThen(() => {
            const abandon = new AbortController();
            const gone = qmp.waitForEvent(
              'DEVICE_DELETED',
              (d) => d.device === id,
              timeoutMs,
              abandon.signal,
            );
            return qmp
              .execute('device_del', { id }, { timeoutMs })
              .orElse((e) => (abandon.abort(), errAsync<unknown, QmpError>(e)))
              .andThen(() => gone);
          });
        }, okAsync(null))
        .map(() => target);
    });
}
