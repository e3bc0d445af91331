// `default_bridges` on the booted guest, once per agent (ours and upstream kata-agent): with no
// PCIe root port configured, the lifecycle cold-plugs `pci-bridge-0` (pcie.0 slot 0x1e, SHPC) and
// hot-plugs each container's virtio-blk rootfs into a free slot of that bridge with QMP
// `device_add bus=pci-bridge-0,addr=…`; the agent gets the PCI path `1e/<slot>` and must find
// the disk by it and mount it as the container's rootfs. Asserted from inside the containers:
// `/` is the ext4 disk, and the disk's sysfs path runs through the bridge at 00:1e.0, slot <slot>.
// The pod is guest-fixture.ts's (config written for TCG and the built guest), with its config
// changed the way a Kata user's would be: `pcie_root_port` removed, `default_bridges = 1`, and
// the image under test; the bundles get runc's default capabilities (kata-agent requires them).
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import {
  addContainer,
  pumpOutput,
  removeContainer,
  startContainer,
  wait,
} from '../../ts/lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../../ts/lifecycle/errors.js';
import { createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { logTail } from '../../ts/qemu/vm.js';
import { needs } from '../harness/prereq.js';
import { leftovers, podFixture, ROOTFS_IMAGE, type PodFixture } from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';

/** Prints the configmap, the root mount and where each virtio disk sits in sysfs. */
const SCRIPT = [
  'echo "key=$(cat /etc/config/key 2>/dev/null)"',
  `echo "root=$(grep ' / ' /proc/mounts | head -n 1)"`,
  'for d in /sys/block/vd*; do echo "disk $(basename $d) $(readlink $d)"; done',
].join('\n');

const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

function ok<T>(
  r: { isErr(): boolean; _unsafeUnwrap(): T; _unsafeUnwrapErr(): LifecycleError },
  f: PodFixture,
): T {
  if (r.isErr())
    throw new Error(
      `${formatLifecycleError(r._unsafeUnwrapErr()).join('\n')}\nconsole:\n${logTail(f.consoleLog, 4000)}`,
    );
  return r._unsafeUnwrap();
}

/** The fixture's config with bridges instead of root ports, booting `img`. */
function useBridges(f: PodFixture, img: NamedGuestImage): void {
  const lines = readFileSync(f.config, 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('pcie_root_port'))
    .map((l) => (l.startsWith('kernel = ') ? `kernel = "${img.kernel}"` : l))
    .map((l) => (l.startsWith('initrd = ') ? `initrd = "${img.initrd}"` : l))
    .map((l) => (l === 'machine_type = "q35"' ? `${l}\ndefault_bridges = 1` : l));
  writeFileSync(f.config, lines.join('\n'));
  for (const bundle of [f.sandboxBundle, f.appBundle]) {
    const file = path.join(bundle, 'config.json');
    const spec = JSON.parse(readFileSync(file, 'utf8'));
    spec.process.capabilities ??= {
      bounding: RUNC_DEFAULT_CAPS,
      effective: RUNC_DEFAULT_CAPS,
      permitted: RUNC_DEFAULT_CAPS,
    };
    writeFileSync(file, JSON.stringify(spec));
  }
}

/** Runs container `id` to its end: its stdout and exit status. */
async function run(
  sb: Parameters<typeof startContainer>[0],
  id: string,
  f: PodFixture,
): Promise<{ out: string; status: number }> {
  ok(await startContainer(sb, id), f);
  let out = '';
  const done = pumpOutput(
    sb,
    id,
    (b) => (out += Buffer.from(b).toString('utf8')),
    () => undefined,
  );
  const status = ok(await wait(sb, id), f);
  await done;
  return { out, status };
}

/** `disk <name> <sysfs link>` of the disk whose link runs through bridge slot 1e, device slot `slot`. */
function diskBehindBridge(out: string, slot: string): string | undefined {
  const re = new RegExp(
    `^disk (vd[a-z]+) \\S*/pci0000:00/0000:00:1e\\.0/0000:[0-9a-f]{2}:${slot}\\.0/`,
    'm',
  );
  return re.exec(out)?.[1];
}

async function bridgePod(t: ExecutionContext, img: NamedGuestImage): Promise<void> {
  const f = podFixture('virtio-blk-pci', ['sh', '-c', SCRIPT], ['sh', '-c', SCRIPT]);
  t.teardown(() => f.cleanup());
  useBridges(f, img);
  const sb = ok(
    await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.sandboxBundle },
      f.options,
    ),
    f,
  );
  const recorded = [sb.state.vm!.qemu!];
  let deleted = false;
  t.teardown(async () => {
    if (!deleted) await deleteSandbox(sb);
  });
  t.deepEqual(
    sb.plan.ports.map((p) => [p.id, p.type, p.addr]),
    [['pci-bridge-0', 'pci-bridge', '0x1e']],
    'one bridge, no root port',
  );

  ok(await addContainer(sb, { id: f.sandboxId, bundle: f.sandboxBundle }), f);
  const sbDisk = sb.plan.containers[0]!.blockDevices[0]!;
  t.like(sbDisk, { bus: 'pci-bridge-0', addr: '0x01', pciPath: '1e/01' });
  const { out: sbOut, status: sbStatus } = await run(sb, f.sandboxId, f);
  t.is(sbStatus, 0, sbOut);
  t.regex(sbOut, /^key=v1$/m, 'the configmap copied into the guest is read');
  const sbName = diskBehindBridge(sbOut, '01');
  t.truthy(sbName, `the rootfs disk sits behind 00:1e.0 at slot 01:\n${sbOut}`);
  t.regex(
    sbOut,
    new RegExp(`^root=/dev/${sbName} / ext4 `, 'm'),
    'that disk is the mounted rootfs',
  );

  ok(await addContainer(sb, { id: f.appId, bundle: f.appBundle }), f);
  const appDisk = sb.plan.containers.find((c) => c.id === f.appId)!.blockDevices[0]!;
  t.like(appDisk, { bus: 'pci-bridge-0', addr: '0x02', pciPath: '1e/02' });
  const { out: appOut, status: appStatus } = await run(sb, f.appId, f);
  t.is(appStatus, 0, appOut);
  const appName = diskBehindBridge(appOut, '02');
  t.truthy(appName, `the second rootfs disk sits behind 00:1e.0 at slot 02:\n${appOut}`);
  t.regex(appOut, new RegExp(`^root=/dev/${appName} / ext4 `, 'm'));
  t.log(`${img.name}: ${sbOut.split('\n').find((l) => l.startsWith(`disk ${sbName}`))}`);

  for (const id of [f.appId, f.sandboxId]) ok(await removeContainer(sb, id), f);
  ok(await deleteSandbox(sb), f);
  deleted = true;
  t.deepEqual(leftovers(f, recorded), []);
}

forEachGuestImage(
  'default_bridges = 1 without root ports: virtio-blk rootfs hot-plugged into pci-bridge-0, found by PCI path 1e/<slot> and mounted',
  bridgePod,
  { timeout: 300_000, needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')] },
);
