// vectors.md §1.1–1.7: SCSI addresses, storage sources, driver mapping, disk names, index
// allocation, attach counts, PCI paths.
import test from 'ava';
import fc from 'fast-check';
import type { Problem } from '../../ts/errors.js';
import {
  agentDeviceId,
  agentDriverFor,
  decreaseAttachCount,
  deviceSlot,
  formatPciPath,
  formatPciSlot,
  increaseAttachCount,
  IndexAllocator,
  MAX_ATTACH_COUNT,
  parsePciPath,
  pciPathOf,
  pciSlot,
  pmemVirtPath,
  rootSlot,
  scsiAddress,
  storageSource,
  virtDriveName,
  type AgentBlockDriver,
} from '../../ts/plan/devices.js';

/** The reference's error text: the message minus the `<field>: ` prefix every Problem carries. */
const what = (p: Problem): string => p.message.slice(p.field.length + 2);
/** A branded slot as a plain number, for comparisons. */
const num = (slot: number): number => slot;

// §1.1
const scsiRows: [number, number, number, string][] = [
  [0, 0, 0, '0:0'],
  [1, 0, 1, '0:1'],
  [2, 0, 2, '0:2'],
  [200, 0, 200, '0:200'],
  [255, 0, 255, '0:255'],
  [256, 1, 0, '1:0'],
  [257, 1, 1, '1:1'],
  [258, 1, 2, '1:2'],
  [512, 2, 0, '2:0'],
  [513, 2, 1, '2:1'],
  [65535, 255, 255, '255:255'],
];
for (const [index, scsiId, lun, address] of scsiRows) {
  test(`SCSI index ${index} sits at id ${scsiId} lun ${lun}`, (t) => {
    t.deepEqual(scsiAddress(index)._unsafeUnwrap(), { scsiId, lun, address });
  });
}

test('a negative SCSI index is refused', (t) => {
  t.is(what(scsiAddress(-1)._unsafeUnwrapErr()), 'Index cannot be negative');
});

test('SCSI index 65536 does not fit id and lun', (t) => {
  t.true(scsiAddress(65536).isErr());
});

// §1.2
const sourceRows: {
  driver: string;
  pciPath?: string;
  scsiAddr?: string;
  ccwAddr?: string;
  virtPath?: string;
  ok?: string;
  err?: string;
}[] = [
  { driver: 'blk', pciPath: '01/0a/05', virtPath: '/dev/vda', ok: '01/0a/05' },
  { driver: 'blk', err: 'block driver is blk but no pci path exists' },
  { driver: 'scsi', scsiAddr: '2:1', virtPath: '/dev/vda', ok: '2:1' },
  { driver: 'scsi', err: 'block driver is scsi but no scsi address exists' },
  { driver: 'blk-ccw', ccwAddr: '0.0.0005', virtPath: '/dev/vda', ok: '0.0.0005' },
  { driver: 'blk-ccw', err: 'block driver is ccw but no ccw address exists' },
  { driver: 'mmioblk', virtPath: '/dev/vda', ok: '/dev/vda' },
  { driver: 'nvdimm', virtPath: '/dev/vda', ok: '/dev/vda' },
  { driver: 'unknown', virtPath: '/dev/vda', err: 'unsupported block driver unknown' },
];
for (const { driver, ok, err, ...addrs } of sourceRows) {
  test(`Storage.source for ${driver} with ${JSON.stringify(addrs)} is ${ok ?? `an error: ${err}`}`, (t) => {
    const r = storageSource(driver, addrs);
    if (ok !== undefined) t.is(r._unsafeUnwrap(), ok);
    else t.is(what(r._unsafeUnwrapErr()), err ?? '');
  });
}

test('Device.id takes the first present of pci path, SCSI, CCW, virt path', (t) => {
  const all = { pciPath: '02', scsiAddr: '0:1', ccwAddr: '0.0.0010', virtPath: '/dev/vda' };
  t.is(agentDeviceId(all), '02');
  t.is(agentDeviceId({ ...all, pciPath: undefined }), '0:1');
  t.is(agentDeviceId({ ccwAddr: '0.0.0010', virtPath: '/dev/vda' }), '0.0.0010');
  t.is(agentDeviceId({ virtPath: '/dev/pmem0' }), '/dev/pmem0');
});

// §1.3
const driverRows: [string, AgentBlockDriver][] = [
  ['virtio-blk-mmio', 'mmioblk'],
  ['virtio-blk-pci', 'blk'],
  ['virtio-blk-ccw', 'blk-ccw'],
  ['virtio-pmem', 'nvdimm'],
  ['virtio-scsi', 'scsi'],
];
for (const [config, agent] of driverRows) {
  test(`block_device_driver ${config} is agent driver ${agent}`, (t) => {
    t.is(agentDriverFor(config)._unsafeUnwrap(), agent);
  });
}

test('an unknown block_device_driver is refused by name', (t) => {
  t.is(
    what(agentDriverFor('virtio-blk-foo')._unsafeUnwrapErr()),
    'unsupported driver type virtio-blk-foo',
  );
});

test('pmem devices are /dev/pmem<N>', (t) => {
  t.is(pmemVirtPath(0), '/dev/pmem0');
  t.is(pmemVirtPath(3), '/dev/pmem3');
});

// §1.4
const nameRows: [number, string][] = [
  [0, 'vda'],
  [25, 'vdz'],
  [26, 'vdaa'],
  [27, 'vdab'],
  [704, 'vdaac'],
  [18277, 'vdzzz'],
];
for (const [index, name] of nameRows) {
  test(`disk index ${index} is ${name}`, (t) => {
    t.is(virtDriveName(index)._unsafeUnwrap(), name);
  });
}

test('a negative disk index is refused', (t) => {
  t.is(what(virtDriveName(-1)._unsafeUnwrapErr()), 'Index cannot be negative');
});

test('a disk name longer than 30 letters is not supported', (t) => {
  // 26 + 26^2 + … + 26^30 is the first index needing 31 letters.
  let first31 = 0n;
  for (let k = 1n; k <= 30n; k++) first31 += 26n ** k;
  t.is(virtDriveName(first31 - 1n)._unsafeUnwrap(), `vd${'z'.repeat(30)}`);
  t.is(what(virtDriveName(first31)._unsafeUnwrapErr()), 'Index not supported');
});

test('SCSI disks use the same naming with an sd prefix', (t) => {
  t.is(virtDriveName(27, 'sd')._unsafeUnwrap(), 'sdab');
});

test('disk names are a bijection: distinct indices, distinct names', (t) => {
  fc.assert(
    fc.property(fc.nat(1_000_000), fc.nat(1_000_000), (a, b) => {
      const na = virtDriveName(a)._unsafeUnwrap();
      const nb = virtDriveName(b)._unsafeUnwrap();
      return (a === b) === (na === nb);
    }),
  );
  t.pass();
});

// §1.5
test('released indices are reused smallest first, then new ones follow', (t) => {
  const a = new IndexAllocator();
  t.deepEqual([a.declare(), a.declare(), a.declare()], [0, 1, 2]);
  t.true(a.release(1));
  t.true(a.release(0));
  t.deepEqual([a.declare(), a.declare(), a.declare()], [0, 1, 3]);
});

test('releasing an index twice or one never handed out changes nothing', (t) => {
  const a = new IndexAllocator();
  a.declare();
  t.true(a.release(0));
  t.false(a.release(0));
  t.false(a.release(5));
  t.deepEqual([a.declare(), a.declare()], [0, 1]);
});

// §1.6
test('decreasing a zero attach count means the device is not attached', (t) => {
  t.is(what(decreaseAttachCount(0n)._unsafeUnwrapErr()), 'The device is not attached');
});

const countRows: {
  start: bigint;
  op: 'increase' | 'decrease';
  result: boolean;
  count: bigint;
  title: string;
}[] = [
  {
    start: 0n,
    op: 'increase',
    result: false,
    count: 1n,
    title: 'first attach: not yet plugged, plug it',
  },
  {
    start: 1n,
    op: 'decrease',
    result: false,
    count: 0n,
    title: 'last detach: now unused, unplug it',
  },
  { start: 3n, op: 'increase', result: true, count: 4n, title: 'attach of a plugged device' },
  { start: 4n, op: 'decrease', result: true, count: 3n, title: 'detach with users left' },
];
for (const { start, op, result, count, title } of countRows) {
  test(`attach count ${start} ${op}: ${title}`, (t) => {
    const r =
      op === 'increase'
        ? increaseAttachCount(start).map((v) => ({ flag: v.alreadyAttached, count: v.count }))
        : decreaseAttachCount(start).map((v) => ({ flag: v.stillAttached, count: v.count }));
    t.deepEqual(r._unsafeUnwrap(), { flag: result, count });
  });
}

test('attach count u64::MAX overflows on increase', (t) => {
  t.is(MAX_ATTACH_COUNT, 18446744073709551615n);
  t.is(
    what(increaseAttachCount(MAX_ATTACH_COUNT)._unsafeUnwrapErr()),
    'device reference count overflow',
  );
  t.is(increaseAttachCount(MAX_ATTACH_COUNT - 1n)._unsafeUnwrap().count, MAX_ATTACH_COUNT);
});

test('three attaches from zero: false, true, true; counts 1, 2, 3', (t) => {
  let count = 0n;
  const seen: [boolean, bigint][] = [];
  for (let i = 0; i < 3; i++) {
    const r = increaseAttachCount(count)._unsafeUnwrap();
    count = r.count;
    seen.push([r.alreadyAttached, r.count]);
  }
  t.deepEqual(seen, [
    [false, 1n],
    [true, 2n],
    [true, 3n],
  ]);
});

test('two detaches from two: true, false; counts 1, 0', (t) => {
  const first = decreaseAttachCount(2n)._unsafeUnwrap();
  const second = decreaseAttachCount(first.count)._unsafeUnwrap();
  t.deepEqual(
    [first, second],
    [
      { stillAttached: true, count: 1n },
      { stillAttached: false, count: 0n },
    ],
  );
});

// §1.7
test('PCI slots 00 and 1f parse, 20 does not', (t) => {
  t.is(num(pciSlot('00')._unsafeUnwrap()), 0);
  t.is(num(pciSlot('1f')._unsafeUnwrap()), 31);
  t.true(pciSlot('20').isErr());
});

test('PCI slot numbers 31 is fine, 32 is not', (t) => {
  t.is(num(pciSlot(31)._unsafeUnwrap()), 31);
  t.true(pciSlot(32).isErr());
});

test('PCI slots print as two hex digits', (t) => {
  t.is(formatPciSlot(pciSlot(1)._unsafeUnwrap()), '01');
  t.is(formatPciSlot(pciSlot(10)._unsafeUnwrap()), '0a');
  t.is(formatPciSlot(pciSlot(31)._unsafeUnwrap()), '1f');
});

test('PCI path 01/0a/05: slots, display, device and root slot', (t) => {
  const p = parsePciPath('01/0a/05')._unsafeUnwrap();
  t.deepEqual([...p], [1, 10, 5]);
  t.is(formatPciPath(p), '01/0a/05');
  t.is(formatPciPath(pciPathOf([1, 10, 5])._unsafeUnwrap()), '01/0a/05');
  t.is(num(deviceSlot(p)), 5);
  t.is(num(rootSlot(p)), 1);
});

test('malformed PCI paths are refused', (t) => {
  for (const bad of ['', '01//05', '1g', '001', '01/20', '+1'])
    t.true(parsePciPath(bad).isErr(), bad);
  t.true(pciPathOf([]).isErr());
});
