// The reference's PCIe port model (runtime-rs `hypervisor/src/device/topology.rs`), kept close to
// the original so each of its tests is a row here: root ports on pcie.0, a switch (upstream
// port) behind a root port, downstream ports on the switch. `ports.ts` turns it into addresses.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';

/** The PCIe root bus of q35 / arm virt. */
export const PCIE_ROOT_BUS = 'pcie.0';

/** Port ids as QEMU sees them: `rp<N>`, `swup<N>`, `swdp<N>`. */
export const rootPortName = (id: number): string => `rp${id}`;
export const switchUpstreamName = (id: number): string => `swup${id}`;
export const switchDownstreamName = (id: number): string => `swdp${id}`;

/** Which kind of port the config asks for (reference `PCIePort`). */
export type PciePortKind = 'NoPort' | 'RootPort' | 'SwitchPort';

export interface PciePortRequest {
  readonly kind: PciePortKind;
  readonly total: number;
}

/**
 * The reference's `get_pcie_port`: both counts set → null (it cannot express both; `planPorts`
 * can), none → NoPort, otherwise the one that is set.
 */
export function getPciePort(rootPorts: number, switchPorts: number): PciePortRequest | null {
  if (rootPorts > 0 && switchPorts > 0) return null;
  if (rootPorts > 0) return { kind: 'RootPort', total: rootPorts };
  if (switchPorts > 0) return { kind: 'SwitchPort', total: switchPorts };
  return { kind: 'NoPort', total: 0 };
}

export interface SwitchDownPort {
  readonly id: number;
  /** The upstream port it hangs off, `swup<N>`. */
  readonly bus: string;
}

export interface PcieSwitch {
  readonly id: number;
  /** The root port it hangs off, `rp<N>`. */
  readonly bus: string;
  readonly downPorts: Map<number, SwitchDownPort>;
}

export interface TopologyPortDevice {
  readonly id: number;
  readonly bus: string;
  /** True once a switch occupies the root port. */
  allocated: boolean;
  connectedSwitch?: PcieSwitch;
}

/** Strategy 1: one root port with one switch; strategy 2: switches spread over root ports 1..n. */
export type SwitchStrategy = 'SingleRootPort' | 'MultipleRootPorts';

function topologyProblem(value: unknown, what: string): Problem {
  return problem('plan', 'pcie-topology', 'pcie topology', value, what);
}

/** Root ports and switches requested for a sandbox, before any address is chosen. */
export class PcieTopology {
  readonly portDevices = new Map<number, TopologyPortDevice>();

  constructor(
    readonly rootPorts: number,
    readonly switchPorts: number,
  ) {}

  getPciePort(): PciePortRequest | null {
    return getPciePort(this.rootPorts, this.switchPorts);
  }

  /** Root ports in id order (Map order is insertion order; ids may be added out of order). */
  rootPortsInOrder(): TopologyPortDevice[] {
    return [...this.portDevices.values()].sort((a, b) => a.id - b.id);
  }

  addPcieRootPort(id: number): Result<void, Problem> {
    if (this.portDevices.has(id))
      return err(topologyProblem(id, `Root Port ${id} already exists.`));
    this.portDevices.set(id, { id, bus: PCIE_ROOT_BUS, allocated: false });
    return ok(undefined);
  }

  addSwitchToRootPort(rootPortId: number, switchId: number): Result<void, Problem> {
    const rp = this.portDevices.get(rootPortId);
    if (rp === undefined)
      return err(topologyProblem(rootPortId, `Root Port ${rootPortId} does not exist.`));
    if (rp.connectedSwitch !== undefined) {
      return err(
        topologyProblem(rootPortId, `Root Port ${rootPortId} already has a connected switch.`),
      );
    }
    rp.allocated = true;
    rp.connectedSwitch = { id: switchId, bus: rootPortName(rootPortId), downPorts: new Map() };
    return ok(undefined);
  }

  addSwitchPortToSwitch(
    upstreamBus: string,
    rootPortId: number,
    switchPortId: number,
  ): Result<void, Problem> {
    const rp = this.portDevices.get(rootPortId);
    if (rp === undefined)
      return err(topologyProblem(rootPortId, `Root Port ${rootPortId} does not exist.`));
    const sw = rp.connectedSwitch;
    if (sw === undefined)
      return err(topologyProblem(rootPortId, `Root Port ${rootPortId} has no connected switch.`));
    if (sw.downPorts.has(switchPortId)) {
      return err(
        topologyProblem(
          switchPortId,
          `Switch Port ${switchPortId} already exists in Switch ${sw.id}.`,
        ),
      );
    }
    sw.downPorts.set(switchPortId, { id: switchPortId, bus: upstreamBus });
    return ok(undefined);
  }

  /** Root ports `0..n-1` on pcie.0; ports that already exist are kept (idempotent, as at HEAD). */
  addRootPortsOnBus(count: number): Result<void, Problem> {
    for (let id = 0; id < count; id++) {
      if (this.portDevices.has(id)) continue;
      const r = this.addPcieRootPort(id);
      if (r.isErr()) return r;
    }
    return ok(undefined);
  }

  /** Reference argument order: (number of switches, number of downstream ports, strategy). */
  addSwitchPortsWithStrategy(
    switches: number,
    switchPorts: number,
    strategy: SwitchStrategy,
  ): Result<void, Problem> {
    return strategy === 'SingleRootPort'
      ? this.addSwitchPortsSingleRootPort(switchPorts, 1)
      : this.addSwitchPortsMultipleRootPorts(switches, switchPorts);
  }

  /** One switch (id = root port id) behind `rootPortId`, downstream ports `1..=count`. */
  addSwitchPortsSingleRootPort(count: number, rootPortId: number): Result<void, Problem> {
    return this.#addSwitch(rootPortId, (swup) => {
      for (let k = 1; k <= count; k++) {
        const r = this.addSwitchPortToSwitch(swup, rootPortId, k);
        if (r.isErr()) return r;
      }
      return ok(undefined);
    });
  }

  /** Switches behind root ports `1..=switches`, ports spread evenly, the first ones get the remainder. */
  addSwitchPortsMultipleRootPorts(switches: number, switchPorts: number): Result<void, Problem> {
    // The reference divides by `switches` unchecked (a panic on 0).
    if (switches <= 0) return err(topologyProblem(switches, 'at least one switch is needed'));
    const base = Math.floor(switchPorts / switches);
    const remainder = switchPorts % switches;
    let assigned = 0;
    for (let rpId = 1; rpId <= switches; rpId++) {
      const inSwitch = rpId <= remainder ? base + 1 : base;
      const r = this.#addSwitch(rpId, (swup) => {
        for (let j = 1; j <= inSwitch; j++) {
          const added = this.addSwitchPortToSwitch(swup, rpId, assigned + j);
          if (added.isErr()) return added;
        }
        return ok(undefined);
      });
      if (r.isErr()) return r;
      assigned += inSwitch;
    }
    return ok(undefined);
  }

  #addSwitch(
    rootPortId: number,
    addPorts: (upstreamBus: string) => Result<void, Problem>,
  ): Result<void, Problem> {
    if (!this.portDevices.has(rootPortId)) {
      const r = this.addPcieRootPort(rootPortId);
      if (r.isErr()) return r;
    }
    const switchId = rootPortId;
    const r = this.addSwitchToRootPort(rootPortId, switchId);
    if (r.isErr()) return r;
    return addPorts(switchUpstreamName(switchId));
  }
}

/** An empty topology for `rootPorts` root ports and `switchPorts` switch ports. */
export function newPcieTopology(rootPorts: number, switchPorts: number): PcieTopology {
  return new PcieTopology(rootPorts, switchPorts);
}

/** Cold-plugged PCI-PCI bridges (`default_bridges`), runtime-rs/runtime-go's `pci-bridge-<N>` ids. */
export const pciBridgeName = (id: number): string => `pci-bridge-${id}`;

/**
 * Slots of a bridge's secondary bus that take hot-plugged devices: 1..30, runtime-rs
 * `PCI_BRIDGE_FIRST_HOTPLUG_SLOT..=PCI_BRIDGE_MAX_CAPACITY` (runtime-go `types/bridges.go`:
 * slot 0 is left to the bridge's SHPC controller, 31 unused).
 */
export const PCI_BRIDGE_SLOTS = { first: 1, last: 30 } as const;

/** A bridge on the root bus and the root-bus slot it sits in. */
export interface PciBridgePlace {
  readonly id: string;
  readonly rootSlot: number;
}

/**
 * Places `count` bridges on the root bus from slot `highestSlot` downwards (kata-ts's pcie.0 map
 * keeps root ports growing upwards from 0x10, bridges downwards from 0x1e), refusing to go below
 * `lowestFreeSlot`. runtime-go puts `pci-bridge-0` at addr 2; kata-ts fixes every address itself.
 */
export function placePciBridges(
  count: number,
  highestSlot: number,
  lowestFreeSlot: number,
): Result<PciBridgePlace[], Problem> {
  const bridges: PciBridgePlace[] = [];
  for (let id = 0; id < count; id++) {
    const rootSlot = highestSlot - id;
    if (rootSlot < lowestFreeSlot) {
      const free = Math.max(0, highestSlot - lowestFreeSlot + 1);
      return err(
        topologyProblem(
          count,
          `${count} PCI bridges do not fit next to the PCIe ports: ${free} pcie.0 slots left`,
        ),
      );
    }
    bridges.push({ id: pciBridgeName(id), rootSlot });
  }
  return ok(bridges);
}
