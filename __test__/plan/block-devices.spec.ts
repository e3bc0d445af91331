// The block device planner (behaviour.md #7): every driver, AIO on every device, SCSI addresses
// for cold-plugged disks, PCI placement on pcie.0 for cold plug and on ports for hot plug.
import test from 'ava';
import { BLOCK_DRIVERS, type BlockAio, type BlockDriver } from '../../ts/config/kata-config.js';
import { hostConst } from '../../ts/paths.js';
import {
  agentDeviceId,
  BlockDevicePlanner,
  parsePciPath,
  storageSource,
  type BlockDeviceConfig,
  type BlockDeviceRequest,
} from '../../ts/plan/devices.js';
import { PCIE0_SLOTS, planPorts, type PortPlan } from '../../ts/plan/ports.js';

const config = (
  blockDeviceDriver: BlockDriver,
  blockDeviceAio: BlockAio = 'io_uring',
  blockDeviceCacheDirect = false,
): BlockDeviceConfig => ({
  blockDeviceDriver,
  blockDeviceAio,
  blockDeviceCacheDirect,
});
const ports = (pcieRootPort: number, pcieSwitchPort = 0): PortPlan =>
  planPorts({ machineType: 'q35', pcieRootPort, pcieSwitchPort })._unsafeUnwrap();
const disk = (name: string, hotplug: boolean, readOnly = false): BlockDeviceRequest => ({
  pathOnHost: hostConst(`/var/lib/disks/${name}`),
  readOnly,
  hotplug,
});

test('a cold-plugged virtio-blk-pci disk sits on pcie.0 at the first disk slot', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(0));
  t.deepEqual(p.allocate(disk('a', false, true))._unsafeUnwrap(), {
    id: 'drive-0',
    driver: 'virtio-blk-pci',
    agentDriver: 'blk',
    pathOnHost: hostConst('/var/lib/disks/a'),
    readOnly: true,
    aio: 'io_uring',
    directIo: false,
    index: 0,
    hotplug: false,
    virtPath: '/dev/vda',
    pciPath: '08',
    bus: 'pcie.0',
    addr: '0x08',
  });
});

test('hot-plugged PCI disks take the free root ports in order and never pcie.0', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(2));
  const a = p.allocate(disk('a', true))._unsafeUnwrap();
  const b = p.allocate(disk('b', true))._unsafeUnwrap();
  t.deepEqual([a.bus, a.addr, a.pciPath], ['rp0', '0x00', '10/00']);
  t.deepEqual([b.bus, b.addr, b.pciPath], ['rp1', '0x00', '11/00']);
  for (const d of [a, b]) t.not(d.bus, 'pcie.0');
});

test('hot-plugged PCI disks behind a switch get a four-hop PCI path', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(1, 2));
  const paths = [1, 2, 3].map((i) => p.allocate(disk(`d${i}`, true))._unsafeUnwrap());
  t.deepEqual(
    paths.map((d) => [d.bus, d.pciPath]),
    [
      ['rp0', '10/00'],
      ['swdp1', '11/00/01/00'],
      ['swdp2', '11/00/02/00'],
    ],
  );
  t.deepEqual([...parsePciPath(paths[2]?.pciPath ?? '')._unsafeUnwrap()], [0x11, 0, 2, 0]);
});

test('when every port is taken, hot plug fails naming pcie_root_port and suggesting a fix', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(1));
  p.allocate(disk('a', true))._unsafeUnwrap();
  const e = p.allocate(disk('b', true))._unsafeUnwrapErr();
  t.is(e.problems[0]?.field, 'hypervisor.qemu.pcie_root_port');
  t.regex(
    e.problems[0]?.message ?? '',
    /pcie_root_port, hypervisor\.qemu\.pcie_switch_port or hypervisor\.qemu\.default_bridges/,
  );
});

test('with no ports at all, PCI hot plug fails instead of using pcie.0', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(0));
  const e = p.allocate(disk('a', true))._unsafeUnwrapErr();
  t.is(e.problems[0]?.field, 'hypervisor.qemu.pcie_root_port');
  t.regex(e.problems[0]?.message ?? '', /no PCIe ports/);
});

test('a failed allocation gives its index back', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(0));
  t.true(p.allocate(disk('a', true)).isErr());
  t.is(p.allocate(disk('b', false))._unsafeUnwrap().index, 0);
});

test('releasing a device frees its index and its port for the next one', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(1));
  const a = p.allocate(disk('a', true))._unsafeUnwrap();
  t.true(p.release(a.id));
  t.false(p.release(a.id));
  const b = p.allocate(disk('b', true))._unsafeUnwrap();
  t.deepEqual([b.index, b.bus, b.virtPath], [0, 'rp0', '/dev/vda']);
});

test('releasing a cold-plugged device frees its pcie.0 slot', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(0));
  const [a, b] = ['a', 'b'].map((n) => p.allocate(disk(n, false))._unsafeUnwrap());
  p.release(a?.id ?? '');
  const c = p.allocate(disk('c', false))._unsafeUnwrap();
  t.deepEqual([b?.addr, c.addr, c.index], ['0x09', '0x08', 0]);
});

test('cold-plug slots run out after the documented range', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-pci'), ports(0));
  const { first, last } = PCIE0_SLOTS.coldPlugDisks;
  for (let s = first; s <= last; s++) t.true(p.allocate(disk(`d${s}`, false)).isOk());
  t.is(
    p.allocate(disk('one-too-many', false))._unsafeUnwrapErr().problems[0]?.field,
    'hypervisor.qemu.block_device_driver',
  );
});

test('a cold-plugged virtio-scsi disk gets an explicit SCSI address on scsi0.0', (t) => {
  const p = new BlockDevicePlanner(config('virtio-scsi'), ports(0));
  const d = p.allocate(disk('a', false))._unsafeUnwrap();
  t.like(d, {
    agentDriver: 'scsi',
    scsiAddr: '0:0',
    bus: 'scsi0.0',
    virtPath: '/dev/sda',
    hotplug: false,
  });
  t.is(d.pciPath, undefined);
  t.is(storageSource(d.agentDriver, d)._unsafeUnwrap(), '0:0');
  t.is(agentDeviceId(d), '0:0');
});

test('virtio-scsi disks need no ports even when hot-plugged; addresses follow the index', (t) => {
  const p = new BlockDevicePlanner(config('virtio-scsi'), ports(0));
  const ds = [0, 1, 2].map((i) => p.allocate(disk(`d${i}`, i > 0))._unsafeUnwrap());
  t.deepEqual(
    ds.map((d) => d.scsiAddr),
    ['0:0', '0:1', '0:2'],
  );
});

for (const aio of ['io_uring', 'native', 'threads'] as const) {
  for (const hotplug of [false, true]) {
    test(`aio ${aio} applies to ${hotplug ? 'hot' : 'cold'}-plugged devices; direct I/O ${aio === 'native' ? 'forced' : 'from cache setting'}`, (t) => {
      const p = new BlockDevicePlanner(config('virtio-blk-pci', aio), ports(1));
      const d = p.allocate(disk('a', hotplug))._unsafeUnwrap();
      t.is(d.aio, aio);
      t.is(d.directIo, aio === 'native');
      const direct = new BlockDevicePlanner(config('virtio-blk-pci', aio, true), ports(1));
      t.true(direct.allocate(disk('a', hotplug))._unsafeUnwrap().directIo);
    });
  }
}

for (const driver of BLOCK_DRIVERS) {
  test(`${driver} yields a device the agent can locate, cold- and hot-plugged`, (t) => {
    const p = new BlockDevicePlanner(config(driver), ports(2));
    for (const hotplug of [false, true]) {
      const d = p.allocate(disk(`d-${hotplug}`, hotplug))._unsafeUnwrap();
      t.is(d.driver, driver);
      t.is(d.hotplug, hotplug);
      t.truthy(storageSource(d.agentDriver, d)._unsafeUnwrap());
      t.truthy(agentDeviceId(d));
      t.regex(d.virtPath, /^\/dev\/(vd[a-z]+|sd[a-z]+|pmem\d+)$/);
      if (hotplug) t.not(d.bus, 'pcie.0');
    }
  });
}

test('virtio-blk-ccw devices get a CCW address and QEMU devno from the index', (t) => {
  const p = new BlockDevicePlanner(config('virtio-blk-ccw'), ports(0));
  const d = p.allocate(disk('a', true))._unsafeUnwrap();
  t.like(d, {
    agentDriver: 'blk-ccw',
    ccwAddr: '0.0.0010',
    addr: 'fe.0.0010',
    virtPath: '/dev/vda',
  });
});

test('virtio-pmem devices count on their own and are found by /dev/pmem<N>', (t) => {
  const p = new BlockDevicePlanner(config('virtio-pmem'), ports(1));
  const a = p.allocate(disk('a', false))._unsafeUnwrap();
  const b = p.allocate(disk('b', true))._unsafeUnwrap();
  t.like(a, {
    id: 'pmem-0',
    index: 0,
    virtPath: '/dev/pmem0',
    agentDriver: 'nvdimm',
    bus: 'pcie.0',
    addr: '0x08',
  });
  t.like(b, { id: 'pmem-1', index: 1, virtPath: '/dev/pmem1', bus: 'rp0' });
  t.is(storageSource(b.agentDriver, b)._unsafeUnwrap(), '/dev/pmem1');
});

test('devices lists what is allocated, in order, as plain JSON', (t) => {
  const p = new BlockDevicePlanner(config('virtio-scsi'), ports(0));
  p.allocate(disk('a', false));
  const b = p.allocate(disk('b', true))._unsafeUnwrap();
  p.allocate(disk('c', true));
  p.release(b.id);
  const listed = p.devices();
  t.deepEqual(
    listed.map((d) => d.id),
    ['drive-0', 'drive-2'],
  );
  t.deepEqual(JSON.parse(JSON.stringify(listed)), listed);
});
