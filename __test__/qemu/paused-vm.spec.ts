// Real QEMU, paused (-S; KVM when usable, else TCG): hot-plug/unplug through our QMP client,
// checked from the host (/proc of the QEMU process, qom-get), and QEMU's errors surfaced.
import path from 'node:path';
import test from 'ava';
import type { BlockAio } from '../../ts/config/kata-config.js';
import { scsiAddress } from '../../ts/plan/device-names.js';
import { hostPath } from '../../ts/paths.js';
import { usableAccel } from '../../ts/qemu/accel.js';
import {
  blockdevAddArgs,
  hotplugBlock,
  pciPathFromQueryPci,
  pciPathOf,
  resizeVcpus,
  unplugBlock,
} from '../../ts/qemu/hotplug.js';
import { Vm, type ProcessExit } from '../../ts/qemu/vm.js';
import {
  aioFacts,
  alive,
  configWith,
  devicePlanner,
  diskImage,
  hotplugDevice,
  QMP_TIMEOUT_MS,
  scratchDir,
  smallPlan,
  startVm,
  track,
} from './qemu-harness.js';

const INITDATA = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';

test.before(async (t) => {
  const probe = await usableAccel();
  t.log(`accelerator: ${probe.accel}${probe.reason ? ` (${probe.reason})` : ''}`);
});

const expectedAio: Record<BlockAio, { ioUring: boolean; aioRing: boolean; direct: boolean }> = {
  io_uring: { ioUring: true, aioRing: false, direct: false },
  native: { ioUring: false, aioRing: true, direct: true },
  threads: { ioUring: false, aioRing: false, direct: false },
};

for (const aio of ['io_uring', 'native', 'threads'] as const) {
  test.serial(
    `aio=${aio} is what QEMU uses, seen in /proc of the QEMU process; unplug closes the image`,
    async (t) => {
      t.timeout(90_000);
      const hv = configWith({
        blockDeviceDriver: 'virtio-scsi',
        blockDeviceAio: aio,
        blockDeviceCacheDirect: false,
      });
      const { vm, dir } = await startVm(t, smallPlan(hv), hv);
      const image = diskImage(dir, 'disk.img');
      const before = aioFacts(vm.pid, image);
      t.is(before.imageDirect, null);
      const dev = hotplugDevice(devicePlanner(hv), image);
      (await hotplugBlock(vm.qmp, dev, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
      const after = aioFacts(vm.pid, image);
      const want = expectedAio[aio];
      t.is(after.ioUringFds > before.ioUringFds, want.ioUring, 'io_uring fd');
      t.is(after.aioRings > before.aioRings, want.aioRing, 'kernel AIO ring mapped');
      t.is(after.imageDirect, want.direct, 'O_DIRECT on the image fd');
      (await unplugBlock(vm.qmp, dev.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
      t.is(aioFacts(vm.pid, image).imageDirect, null, 'image closed after blockdev-del');
    },
  );
}

test.serial(
  'a cold-plugged disk uses its planned AIO mode too (aio=native, O_DIRECT), not threads as the reference does',
  async (t) => {
    t.timeout(90_000);
    const hv = configWith({
      blockDeviceDriver: 'virtio-scsi',
      blockDeviceAio: 'native',
      initdata: INITDATA,
    });
    const dir = scratchDir(t);
    const plan = smallPlan(hv);
    const image = diskImage(
      dir,
      'initdata.image',
      4096,
      Buffer.from(plan.initdata!.imageBase64, 'base64'),
    );
    const { vm } = await startVm(
      t,
      {
        ...plan,
        coldplugDevices: [
          { ...plan.initdata!.device, pathOnHost: hostPath(image)._unsafeUnwrap() },
        ],
      },
      hv,
    );
    const facts = aioFacts(vm.pid, image);
    t.true(facts.aioRings > 0, 'kernel AIO ring mapped');
    t.is(facts.imageDirect, true);
  },
);

test.serial(
  'SCSI disks sit at their planned scsi-id/lun, cold- and hot-plugged (qom-get)',
  async (t) => {
    t.timeout(90_000);
    const hv = configWith({
      blockDeviceDriver: 'virtio-scsi',
      blockDeviceAio: 'threads',
      initdata: INITDATA,
    });
    const dir = scratchDir(t);
    const plan = smallPlan(hv);
    const initdata = plan.initdata!.device;
    // The planned host path is under /run; the test points the same device at a temp image.
    const initdataImage = diskImage(
      dir,
      'initdata.image',
      4096,
      Buffer.from(plan.initdata!.imageBase64, 'base64'),
    );
    const coldplugged = { ...initdata, pathOnHost: hostPath(initdataImage)._unsafeUnwrap() };
    const { vm } = await startVm(t, { ...plan, coldplugDevices: [coldplugged] }, hv);
    const qom = async (id: string, property: string) =>
      (
        await vm.qmp.execute<number>('qom-get', { path: `/machine/peripheral/${id}`, property })
      )._unsafeUnwrap();
    t.is(initdata.scsiAddr, '0:0');
    t.deepEqual([await qom(initdata.id, 'scsi-id'), await qom(initdata.id, 'lun')], [0, 0]);

    const planner = devicePlanner(hv);
    planner.allocate({ pathOnHost: coldplugged.pathOnHost, readOnly: true, hotplug: false }); // index 0 is initdata's
    const next = hotplugDevice(planner, diskImage(dir, 'a.img'));
    const far = {
      ...hotplugDevice(planner, diskImage(dir, 'b.img'), true),
      id: 'drive-258',
      index: 258,
      scsiAddr: scsiAddress(258)._unsafeUnwrap().address,
    };
    for (const d of [next, far])
      (await hotplugBlock(vm.qmp, d, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
    t.deepEqual(
      [next.scsiAddr, await qom(next.id, 'scsi-id'), await qom(next.id, 'lun')],
      ['0:1', 0, 1],
    );
    t.deepEqual(
      [far.scsiAddr, await qom(far.id, 'scsi-id'), await qom(far.id, 'lun')],
      ['1:2', 1, 2],
    );
    // scsi-hd unplugs at once, no guest needed.
    for (const d of [next, far]) (await unplugBlock(vm.qmp, d.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
    const nodes = (await vm.qmp.execute<{ 'node-name': string }[]>('query-named-block-nodes'))
      ._unsafeUnwrap()
      .map((n) => n['node-name']);
    t.false(nodes.includes(next.id) || nodes.includes(far.id));
  },
);

test.serial(
  'virtio-blk-pci on root ports and switch downstream ports gets the planned PCI path; unplug frees the port',
  async (t) => {
    t.timeout(90_000);
    const hv = configWith({
      blockDeviceDriver: 'virtio-blk-pci',
      blockDeviceAio: 'threads',
      pcieRootPort: 1,
      pcieSwitchPort: 2,
      initdata: INITDATA,
    });
    const dir = scratchDir(t);
    const plan = smallPlan(hv);
    const initdata = {
      ...plan.initdata!.device,
      pathOnHost: hostPath(diskImage(dir, 'initdata.image', 4096))._unsafeUnwrap(),
    };
    const { vm } = await startVm(t, { ...plan, coldplugDevices: [initdata] }, hv);
    // pcie.0 devices are in query-pci before firmware ran.
    t.is((await pciPathFromQueryPci(vm.qmp, initdata.id))._unsafeUnwrap(), '08');

    const planner = devicePlanner(hv);
    planner.allocate({ pathOnHost: initdata.pathOnHost, readOnly: true, hotplug: false });
    const devices = ['a', 'b', 'c'].map((n) => hotplugDevice(planner, diskImage(dir, `${n}.img`)));
    t.deepEqual(
      devices.map((d) => [d.bus, d.pciPath]),
      [
        ['rp0', '10/00'],
        ['swdp1', '11/00/01/00'],
        ['swdp2', '11/00/02/00'],
      ],
    );
    for (const d of devices)
      (await hotplugBlock(vm.qmp, d, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
    for (const d of devices)
      t.is((await pciPathOf(vm.qmp, d.id))._unsafeUnwrap(), d.pciPath!, d.id);
    for (const d of devices) (await unplugBlock(vm.qmp, d.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
    // The freed port takes a new device again.
    (await hotplugBlock(vm.qmp, devices[0]!, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
    t.is((await pciPathOf(vm.qmp, devices[0]!.id))._unsafeUnwrap(), '10/00');
  },
);

test.serial(
  "QEMU errors come back typed with QEMU's own text; a failed device_add removes its node",
  async (t) => {
    t.timeout(90_000);
    const hv = configWith({
      blockDeviceDriver: 'virtio-blk-pci',
      blockDeviceAio: 'threads',
      pcieRootPort: 1,
    });
    const { vm, dir } = await startVm(t, smallPlan(hv), hv);
    const dev = hotplugDevice(devicePlanner(hv), diskImage(dir, 'a.img'));

    const onRootBus = await hotplugBlock(
      vm.qmp,
      { ...dev, bus: 'pcie.0', addr: '0x09' },
      { timeoutMs: QMP_TIMEOUT_MS },
    );
    t.like(onRootBus._unsafeUnwrapErr(), {
      kind: 'qmp-command',
      command: 'device_add',
      errorClass: 'GenericError',
    });
    t.regex(onRootBus._unsafeUnwrapErr().message, /pcie\.0.*hotplug/i);
    const nodes = (
      await vm.qmp.execute<{ 'node-name': string }[]>('query-named-block-nodes')
    )._unsafeUnwrap();
    t.false(
      nodes.some((n) => n['node-name'] === dev.id),
      'node rolled back',
    );

    const native = await vm.qmp.execute(
      'blockdev-add',
      blockdevAddArgs({ ...dev, aio: 'native', directIo: false }),
    );
    t.regex(
      native._unsafeUnwrapErr().message,
      /QMP blockdev-add: aio=native was specified, but it requires cache.direct=on/,
    );
    const missing = await vm.qmp.execute(
      'blockdev-add',
      blockdevAddArgs({
        ...dev,
        pathOnHost: hostPath(path.join(dir, 'absent.img'))._unsafeUnwrap(),
      }),
    );
    t.regex(missing._unsafeUnwrapErr().message, /absent\.img.*No such file or directory/);
    const unknown = await vm.qmp.execute('no-such-command');
    t.like(unknown._unsafeUnwrapErr(), { kind: 'qmp-command', errorClass: 'CommandNotFound' });
    const unplugAbsent = await unplugBlock(vm.qmp, 'drive-99', 2_000);
    t.regex(unplugAbsent._unsafeUnwrapErr().message, /Device 'drive-99' not found/);
    const noEvent = await vm.qmp.waitForEvent('DEVICE_DELETED', () => true, 100);
    t.like(noEvent._unsafeUnwrapErr(), { kind: 'qmp-timeout', timeoutMs: 100 });
  },
);

test.serial(
  "a bad command line is reported with QEMU's message; a missing binary as a spawn error",
  async (t) => {
    t.timeout(60_000);
    const dir = scratchDir(t);
    const qmpSocket = path.join(dir, 'qmp.sock');
    const args = [
      '-nodefaults',
      '-display',
      'none',
      '-machine',
      'q35,accel=tcg',
      '-S',
      '-qmp',
      `unix:${qmpSocket},server=on,wait=off`,
      '-device',
      'virtio-serial-pci,id=a,bus=pcie.0,addr=0x02',
      '-device',
      'virtio-serial-pci,id=b,bus=pcie.0,addr=0x02',
    ];
    const vm = await Vm.spawn({
      binary: '/usr/bin/qemu-system-x86_64',
      args,
      logPath: path.join(dir, 'qemu.log'),
      qmpSocket,
      startTimeoutMs: QMP_TIMEOUT_MS,
    });
    if (vm.isOk()) {
      track(vm.value.pid, vm.value.exited);
      await vm.value.kill();
    }
    t.like(vm._unsafeUnwrapErr(), { kind: 'vm-exited', code: 1 });
    t.regex(
      vm._unsafeUnwrapErr().message,
      /QEMU exited \(code 1\) during startup: .*slot 2 function 0 not available/,
    );
    const none = await Vm.spawn({
      binary: path.join(dir, 'no-qemu'),
      args: [],
      logPath: path.join(dir, 'none.log'),
      qmpSocket,
      startTimeoutMs: 5_000,
    });
    t.like(none._unsafeUnwrapErr(), { kind: 'vm-spawn' });
    t.regex(none._unsafeUnwrapErr().message, /ENOENT/);
  },
);

test.serial('vCPUs hot-plugged up to maxcpus for resizing', async (t) => {
  t.timeout(60_000);
  const hv = configWith({});
  const { vm } = await startVm(t, smallPlan(hv, { vcpus: { boot: 1, max: 2, exact: '1' } }), hv);
  const count = async () =>
    (await vm.qmp.execute<unknown[]>('query-cpus-fast'))._unsafeUnwrap().length;
  t.is(await count(), 1);
  t.is((await resizeVcpus(vm.qmp, 2, QMP_TIMEOUT_MS))._unsafeUnwrap(), 2);
  t.is(await count(), 2);
  t.regex(
    (await resizeVcpus(vm.qmp, 3, QMP_TIMEOUT_MS))._unsafeUnwrapErr().message,
    /allowed 1\.\.2 \(maxcpus\)/,
  );
});

test.serial(
  'supervision: exit detected and reported with the log; quit exits cleanly',
  async (t) => {
    t.timeout(60_000);
    const hv = configWith({});
    const { vm } = await startVm(t, smallPlan(hv), hv);
    t.true(vm.running);
    const exit: ProcessExit = await (async () => {
      process.kill(vm.pid, 'SIGTERM'); // our own QEMU, by its pid
      return vm.exited;
    })();
    t.false(vm.running);
    t.true(exit.code === 0 || exit.signal === 'SIGTERM');
    t.like((await vm.qmp.execute('query-status'))._unsafeUnwrapErr(), { kind: 'qmp-closed' });

    const second = await startVm(t, smallPlan(hv), hv);
    t.like((await second.vm.qmp.execute<{ status: string }>('query-status'))._unsafeUnwrap(), {
      status: 'prelaunch',
    });
    t.deepEqual(await second.vm.quit(QMP_TIMEOUT_MS), { code: 0, signal: null });
    t.false(alive(second.vm.pid));
  },
);

test.serial('virtio-fs: virtiofsd per VM, and it does not outlive QEMU', async (t) => {
  t.timeout(60_000);
  const hv = configWith({ sharedFs: 'virtio-fs' });
  const { vm, args, virtiofsd } = await startVm(t, smallPlan(hv), hv);
  t.true(args.some((a) => a.startsWith('vhost-user-fs-pci')));
  t.true(alive(virtiofsd!.pid!));
  await vm.kill();
  const gone = await Promise.race([
    virtiofsd!.exited.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 10_000)),
  ]);
  t.true(gone, 'virtiofsd exits when QEMU disconnects');
  t.false(alive(vm.pid));
});
