// Placement of block devices: index, guest name, SCSI / CCW / PCI address, AIO and direct I/O,
// for every configured driver, hot- or cold-plugged. One planner per sandbox holds the state
// (indices, cold-plug slots, ports in use) so releases free what allocations took.
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import type { BlockAio, BlockDriver, HypervisorConfig } from '../config/kata-config.js';
import type { HostPath } from '../paths.js';
import { IndexAllocator } from './device-index.js';
import { ccwAddress, pmemVirtPath, scsiAddress, virtDriveName } from './device-names.js';
import { formatPciPath, formatPciSlot, pciPathOf, pciSlot } from './pci-path.js';
import { PCI_BRIDGE_SLOTS } from './pcie-topology.js';
import { PCIE0_SLOTS, qemuAddr, type HotplugTarget, type PortPlan } from './ports.js';

/** Agent `driver` / Storage.driver values (`KATA_*_DEV_TYPE`). */
export type AgentBlockDriver = 'blk' | 'mmioblk' | 'blk-ccw' | 'scsi' | 'nvdimm';

/** The agent driver for each configured `block_device_driver`. */
export const AGENT_DRIVERS: Readonly<Record<BlockDriver, AgentBlockDriver>> = {
  'virtio-blk-mmio': 'mmioblk',
  'virtio-blk-pci': 'blk',
  'virtio-blk-ccw': 'blk-ccw',
  'virtio-pmem': 'nvdimm',
  'virtio-scsi': 'scsi',
};

/** The bus of the virtio-scsi controller (`-device virtio-scsi-pci,id=scsi0`). */
export const SCSI_BUS = 'scsi0.0';

/** A block device in the plan (printed by `kata-ts plan`). */
export interface BlockDevice {
  /** QEMU node and device id: `drive-<index>`, or `pmem-<n>` for virtio-pmem. */
  readonly id: string;
  readonly driver: BlockDriver;
  readonly agentDriver: AgentBlockDriver;
  readonly pathOnHost: HostPath;
  readonly readOnly: boolean;
  readonly aio: BlockAio;
  /** `cache.direct=on`: forced by `aio=native` (QEMU requires it), else `block_device_cache_direct`. */
  readonly directIo: boolean;
  /** virtio-scsi: `"<scsi-id>:<lun>"`, cold- and hot-plugged alike. */
  readonly scsiAddr?: string;
  /** virtio-blk-pci: the guest PCI path (`"02"`, `"10/00"`, `"14/00/01/00"`). */
  readonly pciPath?: string;
  /** virtio-blk-ccw: the guest CCW bus id `0.0.xxxx`. */
  readonly ccwAddr?: string;
  /** Guest device node by index (`/dev/vdX`, `/dev/sdX`, `/dev/pmemN`); informative, the guest kernel names by probe order. */
  readonly virtPath: string;
  /** Index in the shared block index space (pmem: in its own). */
  readonly index: number;
  readonly hotplug: boolean;
  /** QEMU `bus=`: `pcie.0`, a port id, or `scsi0.0`; absent for mmio / ccw. */
  readonly bus?: string;
  /** QEMU `addr=` (PCI, `0x%02x`) or `devno=` (CCW, `fe.0.xxxx`). */
  readonly addr?: string;
}

export interface BlockDeviceRequest {
  readonly pathOnHost: HostPath;
  readonly readOnly: boolean;
  /** True once the VM runs (volumes, container devices, block rootfs); false for boot-time disks. */
  readonly hotplug: boolean;
}

export type BlockDeviceConfig = Pick<
  HypervisorConfig,
  'blockDeviceDriver' | 'blockDeviceAio' | 'blockDeviceCacheDirect'
>;

interface PciPlace {
  readonly bus: string;
  readonly addr: string;
  readonly pciPath: string;
  /** What to free on release. */
  readonly coldSlot?: number;
  readonly port?: string;
}

/** Address fields a driver sets, and what the placement took. */
interface Placement {
  readonly fields: Pick<
    BlockDevice,
    'virtPath' | 'scsiAddr' | 'pciPath' | 'ccwAddr' | 'bus' | 'addr'
  >;
  readonly coldSlot?: number;
  readonly port?: string;
}

/** Where a hot-plugged PCI device goes: QEMU `bus=`/`addr=`, its PCI path, and the key it holds. */
interface PlugTarget {
  readonly port: string;
  readonly bus: string;
  readonly addr: string;
  readonly pciPath: string;
}

interface Held {
  readonly device: BlockDevice;
  readonly coldSlot?: number;
  readonly port?: string;
}

/** Allocates block devices for one sandbox; deterministic for a given sequence of calls. */
export class BlockDevicePlanner {
  readonly #config: BlockDeviceConfig;
  readonly #ports: PortPlan;
  readonly #source: string;
  readonly #indices = new IndexAllocator();
  readonly #pmemIndices = new IndexAllocator();
  readonly #coldSlots = new Set<number>();
  readonly #portsInUse = new Set<string>();
  readonly #held = new Map<string, Held>();

  constructor(config: BlockDeviceConfig, ports: PortPlan, source = 'configuration.toml') {
    this.#config = config;
    this.#ports = ports;
    this.#source = source;
  }

  get driver(): BlockDriver {
    return this.#config.blockDeviceDriver;
  }

  /** Places a new device with the configured driver, AIO and cache mode. */
  allocate(request: BlockDeviceRequest): Result<BlockDevice, PlanError> {
    const driver = this.#config.blockDeviceDriver;
    const pmem = driver === 'virtio-pmem';
    const indices = pmem ? this.#pmemIndices : this.#indices;
    const index = indices.declare();
    const placed = this.#place(driver, index, request.hotplug);
    if (placed.isErr()) {
      indices.release(index);
      return err(planError(placed.error));
    }
    const { fields, coldSlot, port } = placed.value;
    const aio = this.#config.blockDeviceAio;
    const device: BlockDevice = {
      id: pmem ? `pmem-${index}` : `drive-${index}`,
      driver,
      agentDriver: AGENT_DRIVERS[driver],
      pathOnHost: request.pathOnHost,
      readOnly: request.readOnly,
      aio,
      directIo: aio === 'native' || this.#config.blockDeviceCacheDirect,
      index,
      hotplug: request.hotplug,
      ...fields,
    };
    this.#held.set(device.id, { device, coldSlot, port });
    return ok(device);
  }

  /** Frees the device's index and its slot or port; false when the id is unknown. */
  release(id: string): boolean {
    const held = this.#held.get(id);
    if (held === undefined) return false;
    this.#held.delete(id);
    const indices = held.device.driver === 'virtio-pmem' ? this.#pmemIndices : this.#indices;
    indices.release(held.device.index);
    if (held.coldSlot !== undefined) this.#coldSlots.delete(held.coldSlot);
    if (held.port !== undefined) this.#portsInUse.delete(held.port);
    return true;
  }

  /** Devices currently allocated, in allocation order. */
  devices(): BlockDevice[] {
    return [...this.#held.values()].map((h) => h.device);
  }

  #place(driver: BlockDriver, index: number, hotplug: boolean): Result<Placement, Problem> {
    switch (driver) {
      case 'virtio-scsi': {
        // Explicit scsi-id/lun for cold-plugged disks too (the reference lets QEMU pick them and so
        // cannot tell the agent where they are).
        const scsi = scsiAddress(index);
        const name = virtDriveName(index, 'sd');
        if (scsi.isErr()) return err(scsi.error);
        if (name.isErr()) return err(name.error);
        return ok({
          fields: { virtPath: `/dev/${name.value}`, scsiAddr: scsi.value.address, bus: SCSI_BUS },
        });
      }
      case 'virtio-blk-ccw': {
        const ccw = ccwAddress(index);
        const name = virtDriveName(index);
        if (ccw.isErr()) return err(ccw.error);
        if (name.isErr()) return err(name.error);
        return ok({
          fields: {
            virtPath: `/dev/${name.value}`,
            ccwAddr: ccw.value.address,
            addr: ccw.value.qemuDevno,
          },
        });
      }
      case 'virtio-blk-mmio': {
        // virtio-mmio transports are laid out by the machine; nothing to address.
        const name = virtDriveName(index);
        if (name.isErr()) return err(name.error);
        return ok({ fields: { virtPath: `/dev/${name.value}` } });
      }
      case 'virtio-pmem': {
        // virtio-pmem-pci needs a PCI place, but the agent finds it by `/dev/pmem<N>`, so no
        // pciPath: Storage.source and Device.id stay the virt path, as in the reference.
        const place = this.#pciPlace(hotplug);
        if (place.isErr()) return err(place.error);
        const { bus, addr, coldSlot, port } = place.value;
        return ok({ fields: { virtPath: pmemVirtPath(index), bus, addr }, coldSlot, port });
      }
      case 'virtio-blk-pci': {
        const name = virtDriveName(index);
        if (name.isErr()) return err(name.error);
        const place = this.#pciPlace(hotplug);
        if (place.isErr()) return err(place.error);
        const { bus, addr, pciPath, coldSlot, port } = place.value;
        return ok({
          fields: { virtPath: `/dev/${name.value}`, pciPath, bus, addr },
          coldSlot,
          port,
        });
      }
    }
  }

  /**
   * Cold-plugged: the next free pcie.0 disk slot. Hot-plugged: the next free PCIe port, else the
   * first free slot of a `default_bridges` bridge (runtime-rs `find_free_slot`: bridges in id
   * order, slots 1..30); never pcie.0.
   */
  #pciPlace(hotplug: boolean): Result<PciPlace, Problem> {
    if (hotplug) {
      const target = this.#freeHotplugTarget() ?? this.#freeBridgeSlot();
      if (target === undefined) return err(this.#noFreePort());
      this.#portsInUse.add(target.port);
      return ok({
        bus: target.bus,
        addr: target.addr,
        pciPath: target.pciPath,
        port: target.port,
      });
    }
    const { first, last } = PCIE0_SLOTS.coldPlugDisks;
    for (let slot = first; slot <= last; slot++) {
      if (this.#coldSlots.has(slot)) continue;
      this.#coldSlots.add(slot);
      const pciPath = formatPciSlot(pciSlot(slot)._unsafeUnwrap());
      return ok({ bus: this.#ports.rootBus, addr: qemuAddr(slot), pciPath, coldSlot: slot });
    }
    const range = `${qemuAddr(first)}–${qemuAddr(last)}`;
    const what = `no free ${this.#ports.rootBus} slot for a cold-plugged block device (slots ${range})`;
    return err(
      problem(
        'plan',
        this.#source,
        'hypervisor.qemu.block_device_driver',
        this.#config.blockDeviceDriver,
        what,
      ),
    );
  }

  #freeHotplugTarget(): PlugTarget | undefined {
    const t = this.#ports.hotplugTargets.find((h: HotplugTarget) => !this.#portsInUse.has(h.port));
    return t === undefined ? undefined : { ...t, bus: t.port, addr: qemuAddr(0) };
  }

  /** `<bridge slot>/<device slot>`; the held key is `<bridge id>/<slot>`. */
  #freeBridgeSlot(): PlugTarget | undefined {
    for (const bridge of this.#ports.ports) {
      if (bridge.type !== 'pci-bridge' || bridge.addr === undefined) continue;
      const rootSlot = Number.parseInt(bridge.addr, 16);
      for (let slot = PCI_BRIDGE_SLOTS.first; slot <= PCI_BRIDGE_SLOTS.last; slot++) {
        const key = `${bridge.id}/${slot}`;
        if (this.#portsInUse.has(key)) continue;
        const pciPath = formatPciPath(pciPathOf([rootSlot, slot])._unsafeUnwrap());
        return { port: key, bus: bridge.id, addr: qemuAddr(slot), pciPath };
      }
    }
    return undefined;
  }

  #noFreePort(): Problem {
    const total = this.#ports.hotplugTargets.length;
    const bridges = this.#ports.ports.filter((p) => p.type === 'pci-bridge').length;
    const slots = bridges * (PCI_BRIDGE_SLOTS.last - PCI_BRIDGE_SLOTS.first + 1);
    const why =
      total + slots === 0
        ? 'no PCIe ports or PCI bridges are configured for hot-plugged block devices'
        : `all ${total} PCIe ports and ${slots} PCI bridge slots are in use by hot-plugged devices`;
    return problem(
      'plan',
      this.#source,
      'hypervisor.qemu.pcie_root_port',
      total,
      `${why}; set hypervisor.qemu.pcie_root_port, hypervisor.qemu.pcie_switch_port or hypervisor.qemu.default_bridges (machine type q35) to have more`,
    );
  }
}
