// The command line and QMP arguments as pure functions of the plan (no QEMU started here).
import test from 'ava';
import { scsiAddress } from '../../ts/plan/device-names.js';
import { hostPath } from '../../ts/paths.js';
import {
  AGENT_PORT_NAME,
  qemuCommandLine,
  qemuOpts,
  type VmLaunch,
} from '../../ts/qemu/cmdline.js';
import { blockdevAddArgs, deviceAddArgs, findPciPath } from '../../ts/qemu/hotplug.js';
import { configWith, devicePlanner, hotplugDevice, smallPlan } from './qemu-harness.js';

const launch: VmLaunch = {
  accel: 'kvm',
  qmpSocket: '/run/vm/qmp.sock',
  agent: { kind: 'virtio-serial', socketPath: '/run/vm/agent.sock', portName: AGENT_PORT_NAME },
};

const INITDATA = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';

/** The values following each occurrence of `flag`. */
function values(args: readonly string[], flag: string): string[] {
  return args.flatMap((a, i) => (a === flag && args[i + 1] !== undefined ? [args[i + 1]!] : []));
}

test('nodefaults, q35 with the accelerator, vCPUs boot/max and memory from the plan', (t) => {
  const hv = configWith({ cpuFeatures: 'pmu=off' });
  const args = qemuCommandLine(
    smallPlan(hv, { vcpus: { boot: 2, max: 4, exact: '2' }, memoryMiB: 512, maxMemoryMiB: 2048 }),
    hv,
    launch,
  )._unsafeUnwrap();
  t.true(args.includes('-nodefaults'));
  t.deepEqual(values(args, '-machine'), ['q35,accel=kvm']);
  t.deepEqual(values(args, '-cpu'), ['host,-arch-capabilities,pmu=off']);
  t.deepEqual(values(args, '-smp'), ['2,maxcpus=4']);
  t.deepEqual(values(args, '-m'), [`512M,slots=${hv.memorySlots},maxmem=2048M`]);
  t.deepEqual(values(args, '-qmp'), ['unix:/run/vm/qmp.sock,server=on,wait=off']);
  const tcg = qemuCommandLine(smallPlan(hv), hv, { ...launch, accel: 'tcg' })._unsafeUnwrap();
  t.deepEqual(values(tcg, '-cpu'), ['max,pmu=off']);
});

test('root ports and a switch with downstream ports at their planned addresses', (t) => {
  const hv = configWith({ pcieRootPort: 2, pcieSwitchPort: 2 });
  const devices = values(qemuCommandLine(smallPlan(hv), hv, launch)._unsafeUnwrap(), '-device');
  t.deepEqual(
    devices.filter((d) => /^(pcie-root-port|x3130|xio3130)/.test(d)),
    [
      'pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=0,addr=0x10,multifunction=off',
      'pcie-root-port,id=rp1,bus=pcie.0,chassis=2,slot=1,addr=0x11,multifunction=off',
      'pcie-root-port,id=rp2,bus=pcie.0,chassis=3,slot=2,addr=0x12,multifunction=off',
      'x3130-upstream,id=swup2,bus=rp2,addr=0x00',
      'xio3130-downstream,id=swdp1,bus=swup2,chassis=4,slot=1,addr=0x01',
      'xio3130-downstream,id=swdp2,bus=swup2,chassis=5,slot=2,addr=0x02',
    ],
  );
});

test('agent channel: virtio-serial port on a unix socket at 0x02, or vhost-vsock', (t) => {
  const hv = configWith({});
  const args = qemuCommandLine(smallPlan(hv), hv, launch)._unsafeUnwrap();
  t.true(values(args, '-device').includes('virtio-serial-pci,id=vser0,bus=pcie.0,addr=0x02'));
  t.true(
    values(args, '-chardev').includes('socket,id=agent,path=/run/vm/agent.sock,server=on,wait=off'),
  );
  t.true(
    values(args, '-device').includes(
      'virtserialport,bus=vser0.0,chardev=agent,name=agent.channel.0',
    ),
  );
  const vsock = qemuCommandLine(smallPlan(hv), hv, {
    ...launch,
    agent: { kind: 'vhost-vsock', guestCid: 3 },
  })._unsafeUnwrap();
  t.true(
    values(vsock, '-device').includes('vhost-vsock-pci,id=vsock0,guest-cid=3,bus=pcie.0,addr=0x02'),
  );
});

test('virtio-scsi: controller at 0x03 and the initdata disk cold-plugged with explicit scsi-id/lun, AIO and cache mode', (t) => {
  const hv = configWith({
    blockDeviceDriver: 'virtio-scsi',
    blockDeviceAio: 'native',
    initdata: INITDATA,
  });
  const plan = smallPlan(hv);
  const args = qemuCommandLine(plan, hv, launch)._unsafeUnwrap();
  const dev = plan.initdata!.device;
  t.true(values(args, '-device').includes('virtio-scsi-pci,id=scsi0,bus=pcie.0,addr=0x03'));
  t.deepEqual(values(args, '-blockdev'), [
    `driver=raw,node-name=${dev.id},read-only=on,cache.direct=on,cache.no-flush=off,file.driver=file,file.filename=${dev.pathOnHost},file.aio=native`,
  ]);
  t.true(
    values(args, '-device').includes(
      `scsi-hd,id=${dev.id},drive=${dev.id},bus=scsi0.0,scsi-id=0,lun=0`,
    ),
  );
});

test('virtio-blk-pci: cold-plugged disk on its pcie.0 slot; no SCSI controller', (t) => {
  const hv = configWith({
    blockDeviceDriver: 'virtio-blk-pci',
    blockDeviceAio: 'io_uring',
    initdata: INITDATA,
  });
  const plan = smallPlan(hv);
  const args = qemuCommandLine(plan, hv, launch)._unsafeUnwrap();
  t.true(
    values(args, '-device').includes(
      'virtio-blk-pci,id=drive-0,drive=drive-0,bus=pcie.0,addr=0x08',
    ),
  );
  t.false(values(args, '-device').some((d) => d.startsWith('virtio-scsi-pci')));
  t.is(plan.initdata!.device.pciPath, '08');
});

test('virtio-fs: memfd shared memory, NUMA node and vhost-user-fs-pci at 0x04', (t) => {
  const hv = configWith({ sharedFs: 'virtio-fs' });
  const args = qemuCommandLine(smallPlan(hv), hv, {
    ...launch,
    virtiofsSocket: '/run/vm/vfs.sock',
  })._unsafeUnwrap();
  t.deepEqual(values(args, '-object'), ['memory-backend-memfd,id=mem,size=256M,share=on']);
  t.deepEqual(values(args, '-numa'), ['node,memdev=mem']);
  t.true(
    values(args, '-device').includes(
      'vhost-user-fs-pci,id=vfs0,chardev=vfs,tag=kataShared,bus=pcie.0,addr=0x04',
    ),
  );
});

test('kernel, initrd and kernel params; every problem reported', (t) => {
  const hv = configWith({ kernel: '/k/vmlinux', initrd: '/k/initrd', kernelParams: 'quiet' });
  const args = qemuCommandLine(smallPlan(hv), hv, {
    ...launch,
    extraKernelParams: 'console=ttyS0',
  })._unsafeUnwrap();
  t.deepEqual(
    [values(args, '-kernel'), values(args, '-initrd'), values(args, '-append')],
    [['/k/vmlinux'], ['/k/initrd'], ['quiet console=ttyS0']],
  );
  const bad = configWith({ machineType: 'pc', sharedFs: 'virtio-fs' });
  const problems = qemuCommandLine(smallPlan(bad), bad, launch);
  t.deepEqual(problems.isErr() ? problems.error.map((p) => p.message) : [], [
    'hypervisor.qemu.machine_type: the QEMU driver drives q35 only',
    'virtiofsSocket: shared_fs = virtio-fs needs a virtiofsd socket',
  ]);
});

test('option values with commas are escaped', (t) => {
  t.is(qemuOpts('file', { id: 'c', path: '/a,b' }), 'file,id=c,path=/a,,b');
});

test('vectors §1.1: device_add for scsi index 258 rw and ro; blockdev-add read-only with force-share', (t) => {
  const hv = configWith({ blockDeviceDriver: 'virtio-scsi', blockDeviceAio: 'threads' });
  const base = hotplugDevice(devicePlanner(hv), '/images/a.img');
  const at258 = {
    ...base,
    id: 'drive-258',
    index: 258,
    scsiAddr: scsiAddress(258)._unsafeUnwrap().address,
  };
  t.deepEqual(deviceAddArgs(at258), {
    driver: 'scsi-hd',
    bus: 'scsi0.0',
    id: 'drive-258',
    drive: 'drive-258',
    'scsi-id': 1,
    lun: 2,
    'share-rw': true,
  });
  const ro = { ...at258, readOnly: true };
  t.deepEqual(deviceAddArgs(ro), {
    driver: 'scsi-hd',
    bus: 'scsi0.0',
    id: 'drive-258',
    drive: 'drive-258',
    'scsi-id': 1,
    lun: 2,
  });
  t.deepEqual(blockdevAddArgs(ro), {
    driver: 'raw',
    'node-name': 'drive-258',
    'read-only': true,
    'force-share': true,
    cache: { direct: false, 'no-flush': false },
    file: { driver: 'file', filename: '/images/a.img', aio: 'threads' },
  });
  t.is(
    (
      blockdevAddArgs({ ...ro, pathOnHost: hostPath('/dev/sdb')._unsafeUnwrap() }).file as {
        driver: string;
      }
    ).driver,
    'host_device',
  );
});

test('virtio-blk-pci hot-plug goes to the planned port at addr 0x00', (t) => {
  const hv = configWith({ blockDeviceDriver: 'virtio-blk-pci', pcieRootPort: 1 });
  const d = hotplugDevice(devicePlanner(hv), '/images/a.img');
  t.deepEqual(deviceAddArgs(d), {
    driver: 'virtio-blk-pci',
    id: d.id,
    drive: d.id,
    bus: 'rp0',
    addr: '0x00',
    'share-rw': true,
  });
});

test('PCI path found in a query-pci tree behind bridges', (t) => {
  const buses = [
    {
      bus: 0,
      devices: [
        { slot: 3, function: 0, qdev_id: 'scsi0' },
        {
          slot: 0x11,
          function: 0,
          qdev_id: 'rp1',
          pci_bridge: {
            bus: { number: 1 },
            devices: [
              {
                slot: 0,
                function: 0,
                qdev_id: 'swup1',
                pci_bridge: {
                  bus: { number: 2 },
                  devices: [
                    {
                      slot: 1,
                      function: 0,
                      qdev_id: 'swdp1',
                      pci_bridge: {
                        bus: { number: 3 },
                        devices: [{ slot: 0, function: 0, qdev_id: 'drive-3' }],
                      },
                    },
                  ],
                },
              },
            ],
          },
        },
      ],
    },
  ];
  t.is(findPciPath(buses, 'drive-3'), '11/00/01/00');
  t.is(findPciPath(buses, 'scsi0'), '03');
  t.is(findPciPath(buses, 'nope'), null);
});
