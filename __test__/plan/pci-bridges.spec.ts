// `default_bridges` (Kata's stock value 1): cold-plugged `pci-bridge-N` devices on pcie.0, and
// hot-plugged PCI block devices placed in a free bridge slot when no PCIe port is free, as
// runtime-rs `find_free_slot` does (bridges in id order, slots 1..30). Pure: planner, config
// reader and command line; the booted-guest proof is __test__/guest/pci-bridge.spec.ts.
import test from 'ava';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import { hostConst } from '../../ts/paths.js';
import { BlockDevicePlanner, type BlockDeviceRequest } from '../../ts/plan/devices.js';
import { planPorts, type PortPlan } from '../../ts/plan/ports.js';
import { AGENT_PORT_NAME, qemuCommandLine, type VmLaunch } from '../../ts/qemu/cmdline.js';
import { deviceAddArgs } from '../../ts/qemu/hotplug.js';
import { configWith, smallPlan } from '../qemu/qemu-harness.js';

const blk = {
  blockDeviceDriver: 'virtio-blk-pci',
  blockDeviceAio: 'io_uring',
  blockDeviceCacheDirect: false,
} as const;
const ports = (defaultBridges: number, pcieRootPort = 0, pcieSwitchPort = 0): PortPlan =>
  planPorts({ machineType: 'q35', pcieRootPort, pcieSwitchPort, defaultBridges })._unsafeUnwrap();
const disk = (name: string): BlockDeviceRequest => ({
  pathOnHost: hostConst(`/var/lib/disks/${name}`),
  readOnly: false,
  hotplug: true,
});

test('default_bridges = 1 plans pci-bridge-0 on pcie.0 at slot 0x1e with chassis 1', (t) => {
  t.deepEqual(ports(1).ports, [
    { id: 'pci-bridge-0', type: 'pci-bridge', bus: 'pcie.0', chassis: 1, slot: null, addr: '0x1e' },
  ]);
  t.deepEqual(ports(1).hotplugTargets, []);
});

test('bridges take pcie.0 slots downwards from 0x1e, chassis numbers after the root ports', (t) => {
  const p = ports(2, 2).ports;
  t.deepEqual(
    p.map((x) => [x.id, x.addr, x.chassis]),
    [
      ['rp0', '0x10', 1],
      ['rp1', '0x11', 2],
      ['pci-bridge-0', '0x1e', 3],
      ['pci-bridge-1', '0x1d', 4],
    ],
  );
});

test('without PCIe ports a hot-plugged virtio-blk disk goes to slot 1 of pci-bridge-0, PCI path 1e/01', (t) => {
  const p = new BlockDevicePlanner(blk, ports(1));
  const a = p.allocate(disk('a'))._unsafeUnwrap();
  t.like(a, { bus: 'pci-bridge-0', addr: '0x01', pciPath: '1e/01' });
  t.like(p.allocate(disk('b'))._unsafeUnwrap(), {
    bus: 'pci-bridge-0',
    addr: '0x02',
    pciPath: '1e/02',
  });
});

test('a released bridge slot is reused first', (t) => {
  const p = new BlockDevicePlanner(blk, ports(1));
  const a = p.allocate(disk('a'))._unsafeUnwrap();
  p.allocate(disk('b'))._unsafeUnwrap();
  t.true(p.release(a.id));
  t.like(p.allocate(disk('c'))._unsafeUnwrap(), { pciPath: '1e/01' });
});

test('root ports are used before bridge slots', (t) => {
  const p = new BlockDevicePlanner(blk, ports(1, 1));
  t.like(p.allocate(disk('a'))._unsafeUnwrap(), { bus: 'rp0', addr: '0x00', pciPath: '10/00' });
  t.like(p.allocate(disk('b'))._unsafeUnwrap(), { bus: 'pci-bridge-0', pciPath: '1e/01' });
});

test('slots 1..30 of a bridge fill before the next bridge, then hot plug fails naming the keys', (t) => {
  const p = new BlockDevicePlanner(blk, ports(2));
  const paths = Array.from(
    { length: 60 },
    (_, i) => p.allocate(disk(`d${i}`))._unsafeUnwrap().pciPath,
  );
  t.is(paths[29], '1e/1e');
  t.is(paths[30], '1d/01');
  t.is(paths[59], '1d/1e');
  const e = p.allocate(disk('x'))._unsafeUnwrapErr();
  t.regex(e.problems[0]?.message ?? '', /60 PCI bridge slots are in use/);
  t.regex(e.problems[0]?.message ?? '', /default_bridges/);
});

test('bridges that do not fit next to the root ports are refused naming default_bridges', (t) => {
  const e = planPorts({
    machineType: 'q35',
    pcieRootPort: 14,
    pcieSwitchPort: 0,
    defaultBridges: 2,
  })._unsafeUnwrapErr();
  t.is(e.problems[0]?.field, 'hypervisor.qemu.default_bridges');
  t.regex(e.problems[0]?.message ?? '', /2 PCI bridges do not fit/);
  t.true(
    planPorts({
      machineType: 'q35',
      pcieRootPort: 14,
      pcieSwitchPort: 0,
      defaultBridges: 1,
    }).isOk(),
  );
});

test('config: default_bridges is read, absent is 0 (kata-types), above 5 is cut to 5 with a warning', (t) => {
  const read = (line: string) =>
    parseKataConfig(`[hypervisor.qemu]\n${line}\n`, 'c.toml')._unsafeUnwrap();
  t.is(read('').config.hypervisor.defaultBridges, 0);
  t.deepEqual(read('default_bridges = 1').warnings, []);
  t.is(read('default_bridges = 1').config.hypervisor.defaultBridges, 1);
  const many = read('default_bridges = 9');
  t.is(many.config.hypervisor.defaultBridges, 5);
  t.deepEqual(many.warnings, [
    'hypervisor.qemu.default_bridges: 9 PCI bridges are too many; using 5 (kata-types MAX_BRIDGE_SIZE)',
  ]);
  t.true(parseKataConfig('[hypervisor.qemu]\ndefault_bridges = "1"\n', 'c.toml').isErr());
});

test('the command line carries pci-bridge with SHPC, its chassis and address', (t) => {
  const hv = configWith({ defaultBridges: 1 });
  const launch: VmLaunch = {
    accel: 'tcg',
    qmpSocket: '/run/vm/qmp.sock',
    agent: { kind: 'virtio-serial', socketPath: '/run/vm/agent.sock', portName: AGENT_PORT_NAME },
  };
  const args = qemuCommandLine(
    smallPlan(hv, { ports: ports(1).ports }),
    hv,
    launch,
  )._unsafeUnwrap();
  t.true(args.includes('pci-bridge,id=pci-bridge-0,bus=pcie.0,chassis_nr=1,shpc=on,addr=0x1e'));
});

test('QMP device_add for a bridge slot names the bridge as bus and the slot as addr', (t) => {
  const d = new BlockDevicePlanner(blk, ports(1)).allocate(disk('a'))._unsafeUnwrap();
  t.deepEqual(deviceAddArgs(d), {
    driver: 'virtio-blk-pci',
    id: 'drive-0',
    drive: 'drive-0',
    bus: 'pci-bridge-0',
    addr: '0x01',
    'share-rw': true,
  });
});

test('on a machine type without pcie.0 the bridges are left out with a warning', (t) => {
  const p = planPorts({ machineType: 'pc', pcieRootPort: 0, pcieSwitchPort: 0, defaultBridges: 1 });
  t.deepEqual(p._unsafeUnwrap().ports, []);
  t.deepEqual(p._unsafeUnwrap().warnings, [
    'hypervisor.qemu.default_bridges ignored: machine type "pc" has no pcie.0',
  ]);
});
