// What kata-ts creates on the PCIe root bus: the fixed pcie.0 address map and the root ports /
// switch ports asked for by `pcie_root_port` / `pcie_switch_port`, each with an explicit address
// so every PCI path is known before the VM boots.
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import type { HypervisorConfig } from '../config/kata-config.js';
import { formatPciPath, pciPathOf } from './pci-path.js';
import {
  newPcieTopology,
  PCIE_ROOT_BUS,
  placePciBridges,
  rootPortName,
  switchDownstreamName,
  switchUpstreamName,
  type PcieTopology,
} from './pcie-topology.js';

export * from './pcie-topology.js';

/**
 * Fixed slots on pcie.0. Every device gets an explicit `addr`, so QEMU never auto-places one
 * (auto-placement takes the first free slot at creation time and could collide with a later
 * explicit address); the command line must also use `-nodefaults` so QEMU adds nothing itself.
 * - 0x00 host bridge (q35 MCH / virt GPEX), built in.
 * - 0x01 kept free: QEMU's default display slot.
 * - 0x02 agent channel (vhost-vsock-pci or virtio-serial-pci), 0x03 virtio-scsi controller
 *   (`scsi0`), 0x04 shared fs (vhost-user-fs-pci / virtio-9p-pci), 0x05 network, 0x06 rng,
 *   0x07 spare for one more fixed device.
 * - 0x08–0x0f cold-plugged PCI block devices (guest image, initdata, …): 8 at most.
 * - 0x10–0x1e PCIe root ports, including the one carrying the switch: 15 at most.
 * - 0x1f ICH9 LPC / SATA / SMBus on q35, built in.
 * pcie.0 itself is never a hot-plug target: QEMU refuses hot-plug there.
 */
export const PCIE0_SLOTS = {
  hostBridge: 0x00,
  display: 0x01,
  agentChannel: 0x02,
  scsiController: 0x03,
  sharedFs: 0x04,
  network: 0x05,
  rng: 0x06,
  spare: 0x07,
  coldPlugDisks: { first: 0x08, last: 0x0f },
  ports: { first: 0x10, last: 0x1e },
  ich9: 0x1f,
} as const;

/** Root ports that fit the map (the switch's root port counts). */
export const MAX_ROOT_PORTS = PCIE0_SLOTS.ports.last - PCIE0_SLOTS.ports.first + 1;
/** Downstream port k sits at slot k (1..31) on its switch's internal bus. */
export const MAX_SWITCH_PORTS = 31;

/** Machine types with a PCIe root bus that take ports (as the reference's `add_pcie_*_ports`). */
export const PCIE_MACHINE_TYPES: readonly string[] = ['q35', 'virt'];

/** One port device on the QEMU command line (`pcie-root-port`, `x3130-upstream`, `xio3130-downstream`, `pci-bridge`). */
export interface Port {
  readonly id: string;
  readonly type: 'root-port' | 'switch-upstream' | 'switch-downstream' | 'pci-bridge';
  /** Parent bus: `pcie.0`, the root port (`rp<N>`) or the upstream port (`swup<N>`). */
  readonly bus: string;
  /** PCIe slot-capability chassis and slot; unique pairs (QEMU requires it), null on upstream ports. */
  readonly chassis: number | null;
  readonly slot: number | null;
  /** QEMU `addr=` on the parent bus, `0x%02x`. */
  readonly addr?: string;
}

/** A port a device can be hot-plugged into, and the PCI path that device will have. */
export interface HotplugTarget {
  readonly port: string;
  readonly pciPath: string;
}

export interface PortPlan {
  /** `pcie.0` on q35 / virt; `pci.0` otherwise (no ports then). */
  readonly rootBus: string;
  readonly ports: readonly Port[];
  /** Hot-plug targets in the order they are used: plain root ports by id, then switch downstream ports. */
  readonly hotplugTargets: readonly HotplugTarget[];
  readonly warnings: readonly string[];
}

export type PortConfig = Pick<HypervisorConfig, 'machineType' | 'pcieRootPort' | 'pcieSwitchPort'> &
  Partial<Pick<HypervisorConfig, 'defaultBridges'>>;

const ROOT_PORT_KEY = 'hypervisor.qemu.pcie_root_port';
const SWITCH_PORT_KEY = 'hypervisor.qemu.pcie_switch_port';

/** `0x%02x`, QEMU's `addr=` (hex slot). */
export function qemuAddr(slot: number): string {
  return `0x${slot.toString(16).padStart(2, '0')}`;
}

function checkCounts(config: PortConfig, source: string): Problem[] {
  const problems: Problem[] = [];
  const { pcieRootPort: rp, pcieSwitchPort: sw } = config;
  if (!Number.isSafeInteger(rp) || rp < 0) {
    problems.push(problem('config', source, ROOT_PORT_KEY, rp, 'must be a non-negative integer'));
  }
  if (!Number.isSafeInteger(sw) || sw < 0) {
    problems.push(problem('config', source, SWITCH_PORT_KEY, sw, 'must be a non-negative integer'));
  }
  if (problems.length > 0) return problems;
  const needed = rp + (sw > 0 ? 1 : 0);
  if (needed > MAX_ROOT_PORTS) {
    const why = sw > 0 ? ` (${rp} plus one carrying the pcie_switch_port switch)` : '';
    const what = `${needed} root ports${why} do not fit: pcie.0 has room for ${MAX_ROOT_PORTS}`;
    problems.push(problem('config', source, ROOT_PORT_KEY, rp, what));
  }
  if (sw > MAX_SWITCH_PORTS) {
    const what = `${sw} switch ports do not fit: a switch has at most ${MAX_SWITCH_PORTS} downstream ports`;
    problems.push(problem('config', source, SWITCH_PORT_KEY, sw, what));
  }
  return problems;
}

/**
 * The reference's topology for our counts: root ports `0..N-1`; with switch ports, one more root
 * port carrying switch `swup<R>` with downstream ports `swdp1..swdpM`, where R = 1 when there are
 * no plain root ports (the reference's fixed id) and otherwise N, the next free id. The reference
 * cannot request both kinds at once (`get_pcie_port` → None); we create both.
 */
function buildTopology(rootPorts: number, switchPorts: number): Result<PcieTopology, Problem> {
  const topology = newPcieTopology(rootPorts, switchPorts);
  const added = topology.addRootPortsOnBus(rootPorts);
  if (added.isErr()) return err(added.error);
  if (switchPorts > 0) {
    const switchRootPort = rootPorts > 0 ? rootPorts : 1;
    const r = topology.addSwitchPortsSingleRootPort(switchPorts, switchRootPort);
    if (r.isErr()) return err(r.error);
  }
  return ok(topology);
}

function pathOf(slots: number[]): string {
  return formatPciPath(pciPathOf(slots)._unsafeUnwrap());
}

/**
 * Addresses, chassis and slots. Root port with id i: chassis i+1, slot i (the reference's intro
 * numbering; HEAD uses chassis 0 for all, which only stays unique while slots differ). Downstream
 * port k of the switch behind root port R: chassis R+1+k, slot k — distinct from every root port
 * pair because R ≥ 1. Root ports take pcie.0 slots from 0x10 upwards in id order.
 */
function renderTopology(topology: PcieTopology): {
  ports: Port[];
  hotplugTargets: HotplugTarget[];
} {
  const ports: Port[] = [];
  const rootTargets: HotplugTarget[] = [];
  const switchTargets: HotplugTarget[] = [];
  topology.rootPortsInOrder().forEach((rp, order) => {
    const slotOnRoot = PCIE0_SLOTS.ports.first + order;
    const id = rootPortName(rp.id);
    ports.push({
      id,
      type: 'root-port',
      bus: PCIE_ROOT_BUS,
      chassis: rp.id + 1,
      slot: rp.id,
      addr: qemuAddr(slotOnRoot),
    });
    const sw = rp.connectedSwitch;
    if (sw === undefined) {
      rootTargets.push({ port: id, pciPath: pathOf([slotOnRoot, 0]) });
      return;
    }
    const upstream = switchUpstreamName(sw.id);
    ports.push({
      id: upstream,
      type: 'switch-upstream',
      bus: id,
      chassis: null,
      slot: null,
      addr: qemuAddr(0),
    });
    for (const dp of [...sw.downPorts.values()].sort((a, b) => a.id - b.id)) {
      const down = switchDownstreamName(dp.id);
      const chassis = rp.id + 1 + dp.id;
      ports.push({
        id: down,
        type: 'switch-downstream',
        bus: upstream,
        chassis,
        slot: dp.id,
        addr: qemuAddr(dp.id),
      });
      switchTargets.push({ port: down, pciPath: pathOf([slotOnRoot, 0, dp.id, 0]) });
    }
  });
  return { ports, hotplugTargets: [...rootTargets, ...switchTargets] };
}

/** The PCIe ports kata-ts creates at sandbox start. */
export function planPorts(
  config: PortConfig,
  source = 'configuration.toml',
): Result<PortPlan, PlanError> {
  const problems = checkCounts(config, source);
  if (problems.length > 0) return err(planError(...problems));
  const { machineType, pcieRootPort: rp, pcieSwitchPort: sw } = config;
  if (!PCIE_MACHINE_TYPES.includes(machineType)) {
    const machine = JSON.stringify(machineType);
    const why = `machine type ${machine} has no PCIe ports (only ${PCIE_MACHINE_TYPES.join(', ')})`;
    const warnings = [
      ...(rp > 0 || sw > 0 ? [`${ROOT_PORT_KEY} / ${SWITCH_PORT_KEY} ignored: ${why}`] : []),
      ...((config.defaultBridges ?? 0) > 0
        ? [`hypervisor.qemu.default_bridges ignored: machine type ${machine} has no pcie.0`]
        : []),
    ];
    return ok({ rootBus: 'pci.0', ports: [], hotplugTargets: [], warnings });
  }
  const topology = buildTopology(rp, sw);
  if (topology.isErr()) return err(planError(topology.error));
  const rendered = renderTopology(topology.value);
  const bridges = renderBridges(config.defaultBridges ?? 0, rendered.ports, source);
  if (bridges.isErr()) return err(planError(bridges.error));
  const ports = [...rendered.ports, ...bridges.value];
  return ok({
    rootBus: PCIE_ROOT_BUS,
    ports,
    hotplugTargets: rendered.hotplugTargets,
    warnings: [],
  });
}

/**
 * `default_bridges` `pci-bridge-<N>` devices on pcie.0 (runtime-rs/runtime-go: `pci-bridge` with
 * SHPC, chassis_nr N+1), from slot 0x1e downwards; chassis numbers after the ports' ones.
 */
function renderBridges(
  count: number,
  ports: readonly Port[],
  source: string,
): Result<Port[], Problem> {
  const rootPortsUsed = ports.filter((p) => p.bus === PCIE_ROOT_BUS).length;
  const placed = placePciBridges(
    count,
    PCIE0_SLOTS.ports.last,
    PCIE0_SLOTS.ports.first + rootPortsUsed,
  );
  if (placed.isErr())
    return err(
      problem('config', source, 'hypervisor.qemu.default_bridges', count, placed.error.message),
    );
  const chassisBase = Math.max(0, ...ports.map((p) => p.chassis ?? 0));
  return ok(
    placed.value.map((b, i) => ({
      id: b.id,
      type: 'pci-bridge' as const,
      bus: PCIE_ROOT_BUS,
      chassis: chassisBase + 1 + i,
      slot: null,
      addr: qemuAddr(b.rootSlot),
    })),
  );
}
