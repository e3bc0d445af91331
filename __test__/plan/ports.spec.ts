// vectors.md §8 (the reference's topology model) and the ports kata-ts plans (behaviour.md #8).
import test from 'ava';
import type { Problem } from '../../ts/errors.js';
import {
  getPciePort,
  MAX_ROOT_PORTS,
  MAX_SWITCH_PORTS,
  newPcieTopology,
  PCIE0_SLOTS,
  PCIE_ROOT_BUS,
  planPorts,
  switchUpstreamName,
  type PortConfig,
} from '../../ts/plan/ports.js';

const what = (p: Problem): string => p.message.slice(p.field.length + 2);
const q35 = (pcieRootPort: number, pcieSwitchPort: number, machineType = 'q35'): PortConfig => ({
  machineType,
  pcieRootPort,
  pcieSwitchPort,
});

// §8 get_pcie_port
const portRows: [number, number, ReturnType<typeof getPciePort>][] = [
  [0, 0, { kind: 'NoPort', total: 0 }],
  [2, 0, { kind: 'RootPort', total: 2 }],
  [0, 1, { kind: 'SwitchPort', total: 1 }],
  [0, 3, { kind: 'SwitchPort', total: 3 }],
  [1, 1, null],
  [2, 3, null],
];
for (const [rp, sw, expected] of portRows) {
  test(`reference get_pcie_port(rp=${rp}, sw=${sw}) is ${expected === null ? 'None' : `${expected.kind} ${expected.total}`}`, (t) => {
    t.deepEqual(getPciePort(rp, sw), expected);
    t.deepEqual(newPcieTopology(rp, sw).getPciePort(), expected);
  });
}

test('a new topology keeps its counts and has no ports yet', (t) => {
  const topo = newPcieTopology(2, 3);
  t.is(topo.rootPorts, 2);
  t.is(topo.switchPorts, 3);
  t.is(topo.portDevices.size, 0);
});

test('adding root port 1 twice fails the second time', (t) => {
  const topo = newPcieTopology(1, 0);
  t.true(topo.addPcieRootPort(1).isOk());
  t.true(topo.portDevices.has(1));
  t.is(what(topo.addPcieRootPort(1)._unsafeUnwrapErr()), 'Root Port 1 already exists.');
});

test('a switch goes only on an existing root port without one', (t) => {
  const topo = newPcieTopology(1, 0);
  topo.addPcieRootPort(1)._unsafeUnwrap();
  t.true(topo.addSwitchToRootPort(1, 101).isOk());
  t.is(what(topo.addSwitchToRootPort(2, 102)._unsafeUnwrapErr()), 'Root Port 2 does not exist.');
  t.is(
    what(topo.addSwitchToRootPort(1, 103)._unsafeUnwrapErr()),
    'Root Port 1 already has a connected switch.',
  );
});

test('switch ports need an existing root port with a switch and a new id', (t) => {
  const swup = switchUpstreamName(101);
  t.is(swup, 'swup101');
  const topo = newPcieTopology(1, 0);
  topo.addPcieRootPort(1)._unsafeUnwrap();
  topo.addSwitchToRootPort(1, 101)._unsafeUnwrap();
  t.true(topo.addSwitchPortToSwitch(swup, 1, 1).isOk());
  t.is(
    what(topo.addSwitchPortToSwitch(swup, 2, 1)._unsafeUnwrapErr()),
    'Root Port 2 does not exist.',
  );
  t.is(
    what(topo.addSwitchPortToSwitch(swup, 1, 1)._unsafeUnwrapErr()),
    'Switch Port 1 already exists in Switch 101.',
  );

  const bare = newPcieTopology(1, 0);
  bare.addPcieRootPort(1)._unsafeUnwrap();
  t.is(
    what(bare.addSwitchPortToSwitch(swup, 1, 1)._unsafeUnwrapErr()),
    'Root Port 1 has no connected switch.',
  );
});

test('root ports on the bus are added idempotently', (t) => {
  const topo = newPcieTopology(3, 0);
  t.true(topo.addRootPortsOnBus(3).isOk());
  t.true(topo.addRootPortsOnBus(3).isOk());
  t.deepEqual(
    topo.rootPortsInOrder().map((p) => [p.id, p.bus]),
    [
      [0, PCIE_ROOT_BUS],
      [1, PCIE_ROOT_BUS],
      [2, PCIE_ROOT_BUS],
    ],
  );
});

test('single-root-port strategy: root port 1 carries one switch with 2 downstream ports', (t) => {
  const topo = newPcieTopology(0, 2);
  t.true(topo.addSwitchPortsWithStrategy(1, 2, 'SingleRootPort').isOk());
  const sw = topo.portDevices.get(1)?.connectedSwitch;
  t.is(sw?.bus, 'rp1');
  t.deepEqual(
    [...(sw?.downPorts.values() ?? [])],
    [
      { id: 1, bus: 'swup1' },
      { id: 2, bus: 'swup1' },
    ],
  );
});

test('multiple-root-ports strategy: root ports 1 and 2 each get 2 downstream ports', (t) => {
  const topo = newPcieTopology(2, 0);
  t.true(topo.addSwitchPortsWithStrategy(2, 4, 'MultipleRootPorts').isOk());
  for (const id of [1, 2]) t.is(topo.portDevices.get(id)?.connectedSwitch?.downPorts.size, 2);
  t.deepEqual([...(topo.portDevices.get(2)?.connectedSwitch?.downPorts.keys() ?? [])], [3, 4]);
});

test('multiple-root-ports strategy gives the remainder to the first switches', (t) => {
  const topo = newPcieTopology(0, 5);
  topo.addSwitchPortsWithStrategy(2, 5, 'MultipleRootPorts')._unsafeUnwrap();
  t.is(topo.portDevices.get(1)?.connectedSwitch?.downPorts.size, 3);
  t.is(topo.portDevices.get(2)?.connectedSwitch?.downPorts.size, 2);
  t.true(topo.addSwitchPortsWithStrategy(0, 5, 'MultipleRootPorts').isErr());
});

// What kata-ts creates.
test('no ports asked: no ports', (t) => {
  t.deepEqual(planPorts(q35(0, 0))._unsafeUnwrap(), {
    rootBus: 'pcie.0',
    ports: [],
    hotplugTargets: [],
    warnings: [],
  });
});

test('pcie_root_port = 2: rp0 and rp1 on pcie.0 at fixed addresses, chassis i+1 slot i', (t) => {
  const plan = planPorts(q35(2, 0))._unsafeUnwrap();
  t.deepEqual(plan.ports, [
    { id: 'rp0', type: 'root-port', bus: 'pcie.0', chassis: 1, slot: 0, addr: '0x10' },
    { id: 'rp1', type: 'root-port', bus: 'pcie.0', chassis: 2, slot: 1, addr: '0x11' },
  ]);
  t.deepEqual(plan.hotplugTargets, [
    { port: 'rp0', pciPath: '10/00' },
    { port: 'rp1', pciPath: '11/00' },
  ]);
});

test('pcie_switch_port = 2 alone: root port rp1 carries swup1 with swdp1 and swdp2', (t) => {
  const plan = planPorts(q35(0, 2))._unsafeUnwrap();
  t.deepEqual(plan.ports, [
    { id: 'rp1', type: 'root-port', bus: 'pcie.0', chassis: 2, slot: 1, addr: '0x10' },
    { id: 'swup1', type: 'switch-upstream', bus: 'rp1', chassis: null, slot: null, addr: '0x00' },
    { id: 'swdp1', type: 'switch-downstream', bus: 'swup1', chassis: 3, slot: 1, addr: '0x01' },
    { id: 'swdp2', type: 'switch-downstream', bus: 'swup1', chassis: 4, slot: 2, addr: '0x02' },
  ]);
  t.deepEqual(plan.hotplugTargets, [
    { port: 'swdp1', pciPath: '10/00/01/00' },
    { port: 'swdp2', pciPath: '10/00/02/00' },
  ]);
});

test('both set: plain root ports first, then the switch on the next root port id', (t) => {
  const plan = planPorts(q35(2, 1))._unsafeUnwrap();
  t.deepEqual(
    plan.ports.map((p) => [p.id, p.bus, p.addr]),
    [
      ['rp0', 'pcie.0', '0x10'],
      ['rp1', 'pcie.0', '0x11'],
      ['rp2', 'pcie.0', '0x12'],
      ['swup2', 'rp2', '0x00'],
      ['swdp1', 'swup2', '0x01'],
    ],
  );
  t.deepEqual(
    plan.hotplugTargets.map((h) => h.port),
    ['rp0', 'rp1', 'swdp1'],
  );
  t.is(plan.hotplugTargets[2]?.pciPath, '12/00/01/00');
});

test('chassis/slot pairs are unique and addresses fit the port range for every allowed count', (t) => {
  for (let rp = 0; rp <= MAX_ROOT_PORTS; rp++) {
    for (const sw of [0, 1, 7, MAX_SWITCH_PORTS]) {
      const r = planPorts(q35(rp, sw));
      if (rp + (sw > 0 ? 1 : 0) > MAX_ROOT_PORTS) {
        t.true(r.isErr());
        continue;
      }
      const ports = r._unsafeUnwrap().ports;
      const pairs = ports.filter((p) => p.chassis !== null).map((p) => `${p.chassis}/${p.slot}`);
      t.is(new Set(pairs).size, pairs.length, `rp=${rp} sw=${sw}`);
      for (const p of ports.filter((p) => p.bus === 'pcie.0')) {
        const slot = Number.parseInt(p.addr ?? '', 16);
        t.true(slot >= PCIE0_SLOTS.ports.first && slot <= PCIE0_SLOTS.ports.last);
      }
    }
  }
});

test('too many root ports is an error naming pcie_root_port', (t) => {
  const e = planPorts(q35(MAX_ROOT_PORTS + 1, 0))._unsafeUnwrapErr();
  t.is(e.problems[0]?.field, 'hypervisor.qemu.pcie_root_port');
  t.is(
    planPorts(q35(MAX_ROOT_PORTS, 1))._unsafeUnwrapErr().problems[0]?.field,
    'hypervisor.qemu.pcie_root_port',
  );
  t.true(planPorts(q35(MAX_ROOT_PORTS, 0)).isOk());
});

test('too many switch ports is an error naming pcie_switch_port', (t) => {
  const e = planPorts(q35(0, MAX_SWITCH_PORTS + 1))._unsafeUnwrapErr();
  t.deepEqual(
    e.problems.map((p) => p.field),
    ['hypervisor.qemu.pcie_switch_port'],
  );
});

test('every bad count is reported, not only the first', (t) => {
  const e = planPorts(q35(-1, 1.5))._unsafeUnwrapErr();
  t.deepEqual(
    e.problems.map((p) => p.field),
    ['hypervisor.qemu.pcie_root_port', 'hypervisor.qemu.pcie_switch_port'],
  );
});

test('arm virt machines get ports too', (t) => {
  t.is(planPorts(q35(1, 0, 'virt'))._unsafeUnwrap().ports.length, 1);
});

test('other machine types get no ports, with a warning when some were asked', (t) => {
  const plan = planPorts(q35(2, 2, 'pc'))._unsafeUnwrap();
  t.deepEqual(plan.ports, []);
  t.deepEqual(plan.hotplugTargets, []);
  t.is(plan.warnings.length, 1);
  t.regex(plan.warnings[0] ?? '', /machine type "pc"/);
  t.deepEqual(planPorts(q35(0, 0, 'pc'))._unsafeUnwrap().warnings, []);
});
