// A booted busybox guest (TCG; Debian kernel + modules, initramfs from ts/guest/build-guest.sh via
// `make guest`): devices from the plan and from QMP hot-plug, as the guest kernel sees them.
// Skipped when build/guest has not been built.
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { hostPath } from '../../ts/paths.js';
import { SHELL_BOOT_PARAMS, GuestShell, guestImage } from '../../ts/guest/guest-shell.js';
import { hotplugBlock, pciPathOf, unplugBlock } from '../../ts/qemu/hotplug.js';
import { logTail } from '../../ts/qemu/vm.js';
import type { HypervisorConfig } from '../../ts/config/kata-config.js';
import type { ResourcePlan } from '../../ts/plan/plan.js';
import { repoRoot } from '../cli/cli-harness.js';
import {
  configWith,
  devicePlanner,
  diskImage,
  hotplugDevice,
  QMP_TIMEOUT_MS,
  scratchDir,
  smallPlan,
  startVm,
} from './qemu-harness.js';
import { gated, needs } from '../harness/prereq.js';

const image = guestImage(path.join(repoRoot, 'build/guest'));
const guestTest = gated(needs.qemu(), image ? null : 'guest image missing (make guest)').serial;
const BOOT_TIMEOUT_MS = 90_000;
const INITDATA = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';

/** A guest shell line that waits (≤ 30 s) until `check` succeeds, printing its output. */
const waitFor = (check: string) =>
  `i=0; until out=$(${check}) 2>/dev/null; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.1; done; echo "$out"`;
/** Waits until `check` fails (the device went away). */
const waitGone = (check: string) =>
  `i=0; while ( ${check} ) >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.1; done`;
/** The block device name under the PCI device at `pciPath` (`10/00` → /sys/devices/pci0000:00/0000:00:10.0/0000:xx:00.0). */
const blockAtPciPath = (pciPath: string) =>
  `d=/sys/devices/pci0000:00; for s in ${pciPath.split('/').join(' ')}; do d=$(ls -d $d/0000:??:$s.0 | head -1); [ -n "$d" ] || exit 1; done; ls $d/virtio*/block`;
const blockAtScsiAddr = (scsiAddr: string) => `ls /sys/bus/scsi/devices/0:0:${scsiAddr}/block`;

async function bootGuest(t: ExecutionContext, plan: ResourcePlan, hv: HypervisorConfig) {
  t.timeout(BOOT_TIMEOUT_MS * 2);
  const dir = scratchDir(t);
  const initdataImage = diskImage(
    dir,
    'initdata.image',
    4096,
    Buffer.from(plan.initdata!.imageBase64, 'base64'),
  );
  const coldplug = plan.coldplugDevices.map((d) =>
    d.id === plan.initdata!.device.id
      ? { ...d, pathOnHost: hostPath(initdataImage)._unsafeUnwrap() }
      : d,
  );
  const started = await startVm(t, { ...plan, coldplugDevices: coldplug }, hv, {
    accel: 'tcg',
    paused: false,
    pcieNativeHotplug: false,
    kernel: image!.kernel,
    initrd: image!.initrd,
    extraKernelParams: SHELL_BOOT_PARAMS,
    consoleLog: path.join(dir, 'console.log'),
  });
  const agentSocket = path.join(started.dir, 'agent.sock');
  const shell = (await GuestShell.connect(agentSocket))._unsafeUnwrap();
  t.teardown(() => shell.close());
  const ready = await shell.ready(BOOT_TIMEOUT_MS);
  if (ready.isErr())
    throw new Error(
      `${ready.error.message}\nconsole:\n${logTail(path.join(dir, 'console.log'))}\nqemu:\n${logTail(started.vm.logPath)}`,
    );
  const run = async (line: string) => (await shell.run(line, 60_000))._unsafeUnwrap();
  return { ...started, shell, run, dir };
}

/** Checks the initdata disk `/dev/<name>`: magic, length field, payload gunzips to the TOML. */
async function checkInitdata(
  t: ExecutionContext,
  run: (l: string) => Promise<{ output: string; rc: number }>,
  name: string,
  plan: ResourcePlan,
) {
  const bytes = Buffer.from(plan.initdata!.imageBase64, 'base64');
  const gzipLength = Number(bytes.readBigUInt64LE(8));
  t.deepEqual(await run(`head -c 8 /dev/${name}`), { output: 'initdata', rc: 0 });
  t.is(Number((await run(`od -An -tu8 -j8 -N8 /dev/${name}`)).output.trim()), gzipLength);
  t.deepEqual(
    await run(`dd if=/dev/${name} bs=1 skip=16 count=${gzipLength} 2>/dev/null | gunzip`),
    { output: INITDATA, rc: 0 },
  );
}

guestTest(
  'virtio-blk-pci: initdata disk readable at 08; hot-plugged disks appear as /dev/vdX at the planned PCI paths and go on unplug',
  async (t) => {
    const hv = configWith({
      blockDeviceDriver: 'virtio-blk-pci',
      blockDeviceAio: 'io_uring',
      pcieRootPort: 1,
      pcieSwitchPort: 1,
      initdata: INITDATA,
    });
    const plan = smallPlan(hv);
    const { vm, run, dir } = await bootGuest(t, plan, hv);
    t.log(`booted in ${vm.startMs.toFixed(0)} ms to QMP (TCG)`);

    const initdataName = (await run(waitFor(blockAtPciPath('08')))).output.trim();
    t.regex(initdataName, /^vd[a-z]+$/);
    await checkInitdata(t, run, initdataName, plan);

    const planner = devicePlanner(hv);
    planner.allocate({
      pathOnHost: plan.initdata!.device.pathOnHost,
      readOnly: true,
      hotplug: false,
    });
    const devices = [
      hotplugDevice(planner, diskImage(dir, 'a.img')),
      hotplugDevice(planner, diskImage(dir, 'b.img', 2 << 20)),
    ];
    t.deepEqual(
      devices.map((d) => d.pciPath),
      ['10/00', '11/00/01/00'],
    );
    for (const d of devices) {
      (await hotplugBlock(vm.qmp, d, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
      const found = await run(waitFor(blockAtPciPath(d.pciPath!)));
      t.is(found.rc, 0, `${d.id} at ${d.pciPath}`);
      const name = found.output.trim();
      t.regex(name, /^vd[a-z]+$/);
      t.is(
        (await run(`test -b /dev/${name} && cat /sys/block/${name}/size`)).output.trim(),
        String((d.id === devices[0]!.id ? 1 << 20 : 2 << 20) / 512),
      );
      t.is((await pciPathOf(vm.qmp, d.id))._unsafeUnwrap(), d.pciPath!);
    }
    for (const d of devices) {
      (await unplugBlock(vm.qmp, d.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
      t.is((await run(waitGone(blockAtPciPath(d.pciPath!)))).rc, 0, `${d.id} gone from the guest`);
    }
  },
);

guestTest(
  'virtio-scsi: initdata at 0:0:0:0; a hot-plugged scsi-hd appears at 0:0:<id>:<lun> and goes on unplug',
  async (t) => {
    const hv = configWith({
      blockDeviceDriver: 'virtio-scsi',
      blockDeviceAio: 'threads',
      initdata: INITDATA,
    });
    const plan = smallPlan(hv);
    const { vm, run, dir } = await bootGuest(t, plan, hv);
    t.is(plan.initdata!.device.scsiAddr, '0:0');
    const initdataName = (await run(waitFor(blockAtScsiAddr('0:0')))).output.trim();
    t.regex(initdataName, /^sd[a-z]+$/);
    await checkInitdata(t, run, initdataName, plan);

    const planner = devicePlanner(hv);
    planner.allocate({
      pathOnHost: plan.initdata!.device.pathOnHost,
      readOnly: true,
      hotplug: false,
    });
    const d = hotplugDevice(planner, diskImage(dir, 'a.img'));
    t.is(d.scsiAddr, '0:1');
    (await hotplugBlock(vm.qmp, d, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
    const found = await run(waitFor(blockAtScsiAddr(d.scsiAddr!)));
    t.is(found.rc, 0);
    t.regex(found.output.trim(), /^sd[a-z]+$/);
    (await unplugBlock(vm.qmp, d.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
    t.is((await run(waitGone(blockAtScsiAddr(d.scsiAddr!)))).rc, 0);
  },
);
