// Storage kinds the planner produces that the other guest suites do not boot, seen from inside the
// guest, once per agent image (forEachGuestImage: ours and upstream kata-agent 4.1.0, built with
// `init-data`). Today that is initdata: a sandbox planned with the `cc_init_data` annotation gets
// the initdata image cold-plugged as a read-only virtio-blk disk; the test writes the image where
// the plan put it (as the lifecycle's writeInitdataImage does), boots, and asserts
// - both agents: the disk is in the guest at the plan's PCI path, read-only, of the image's size
//   (sysfs, read from an exec in the sandbox container);
// - kata-agent: it found the disk and read it (its `agent.log=debug` console log: "Initdata
//   version", and its "Initdata digest" equals the plan's digest). Our agent does nothing with
//   initdata (no attestation agents to configure, no policy engine): the disk is only present.
// Not here, because nothing can produce them on this host today: a block rootfs on xfs (the planner
// adds `nouuid` to the storage, but there is no mkfs.xfs on this host to make the image, and the
// guest image loads no xfs module), and an overlay rootfs shared over virtio-fs (the planner plans
// it, but it needs the lifecycle's shared dirs and virtiofsd, which bootAgentGuest does not start).
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { fromJson } from '@bufbuild/protobuf';
import type { ExecutionContext } from 'ava';
import type { AgentClient } from '../../ts/agent/client.js';
import type { HypervisorConfig, KataConfig } from '../../ts/config/kata-config.js';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import { CreateContainerRequestSchema } from '../../ts/gen/agent_pb.js';
import { bootAgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { gatherHostFacts } from '../../ts/host/gather-host-facts.js';
import { INITDATA_ANNOTATION } from '../../ts/plan/initdata.js';
import { plan, type ResourcePlan } from '../../ts/plan/plan.js';
import { logTail } from '../../ts/qemu/vm.js';
import { execRequest } from '../../ts/shim/exec-spec.js';
import { parseOciSpec } from '../../ts/spec/oci-spec.js';
import { needs } from '../harness/prereq.js';
import { alive, track } from '../qemu/qemu-harness.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';
import { createSandbox, prepareContainer, STEP_TIMEOUT_MS, within } from './planned-pod.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const BOOT_TIMEOUT_MS = 240_000;
const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
/** A valid initdata TOML (vectors §7.2's shape) with a marker the test can look for. */
const INITDATA_TOML =
  'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"marker.txt" = "kata-ts storage-kinds"\n';

interface Pod {
  readonly dir: string;
  readonly hv: HypervisorConfig;
  readonly plan: ResourcePlan;
  cleanup(): void;
}

/** Plans sandbox-only pod `sid` (busybox rootfs image, `sleep`) with initdata from the annotation. */
function initdataPod(): Pod {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-storage-'));
  const sid = `storage-${randomBytes(6).toString('hex')}`;
  let image: string | null = null;
  // The dirs this test made for the image, innermost first: removed while empty.
  const made: string[] = [];
  const cleanup = () => {
    if (image !== null) rmSync(image, { force: true });
    image = null;
    for (const d of made.splice(0)) {
      try {
        rmdirSync(d);
      } catch {
        break; // not empty: someone else's files are in it now
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const rootfsImage = path.join(dir, 'sb-rootfs.ext4');
    copyFileSync(ROOTFS_IMAGE, rootfsImage);
    const rootfs = [{ type: 'ext4', source: rootfsImage, options: ['loop', 'rw'] }];
    const json = JSON.parse(
      readFileSync(path.join(repoRoot, 'examples/bundle/config.json'), 'utf8'),
    );
    json.process.capabilities = { bounding: CAPS, effective: CAPS, permitted: CAPS };
    json.process.args = ['sleep', '3601'];
    json.mounts = [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'mode=755'] },
      {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', 'ro'],
      },
    ];
    json.annotations = {
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': sid,
      [INITDATA_ANNOTATION]: gzipSync(INITDATA_TOML).toString('base64'),
    };
    const spec = parseOciSpec(JSON.stringify(json), 'config.json')._unsafeUnwrap();
    const parsed = parseKataConfig(
      readFileSync(path.join(repoRoot, 'examples/configuration-qemu.toml'), 'utf8'),
      'configuration-qemu.toml',
    )._unsafeUnwrap().config;
    const hv: HypervisorConfig = {
      ...parsed.hypervisor,
      sharedFs: 'none',
      blockDeviceDriver: 'virtio-blk-pci',
      pcieRootPort: 3,
      defaultMemoryMiB: 512,
      defaultMaxMemoryMiB: 0,
      initdata: '',
      enableAnnotations: ['cc_init_data'],
    };
    const config: KataConfig = { ...parsed, hypervisor: hv };
    const planned = plan({
      config,
      configSource: 'configuration-qemu.toml',
      sandbox: { id: sid, bundleDir: path.join(dir, 'sb'), spec, rootfsMounts: rootfs },
      containers: [],
      host: gatherHostFacts([spec], { rootfsMounts: [rootfs] }),
    });
    if (planned.isErr()) throw new Error(planned.error.problems.map((p) => p.message).join('\n'));
    const p = planned.value;
    if (p.initdata === null) throw new Error('the plan has no initdata');
    // What the lifecycle's writeInitdataImage does: the image where the plan put it.
    const initdataDir = path.dirname(p.initdata.hostPath);
    const first = mkdirSync(initdataDir, { recursive: true, mode: 0o700 });
    if (first !== undefined)
      for (let d = initdataDir; ; d = path.dirname(d)) {
        made.push(d);
        if (d === first || d === path.dirname(d)) break;
      }
    writeFileSync(p.initdata.hostPath, Buffer.from(p.initdata.imageBase64, 'base64'), {
      mode: 0o600,
      flag: 'wx',
    });
    image = p.initdata.hostPath;
    return { dir, hv, plan: p, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

let execs = 0;

/** ExecProcess `sh -c script` in container `cid`: its stdout and exit code. */
async function sh(agent: AgentClient, cid: string, script: string): Promise<[string, number]> {
  const execId = `exec-${execs++}`;
  const process = {
    args: ['sh', '-c', script],
    cwd: '/',
    env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
    user: { uid: 0, gid: 0 },
    capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
  };
  (await agent.execProcess(execRequest(cid, execId, process)))._unsafeUnwrap();
  const chunks: Buffer[] = [];
  for (;;) {
    const r = await within(
      STEP_TIMEOUT_MS,
      agent.readStdout(cid, execId, 65536),
      `ReadStdout ${execId}`,
    );
    if (r.isErr() || r.value.length === 0) break;
    chunks.push(Buffer.from(r.value));
  }
  const code = await within(STEP_TIMEOUT_MS, agent.waitProcess(cid, execId), `Wait ${execId}`);
  return [Buffer.concat(chunks).toString('utf8'), code._unsafeUnwrap()];
}

/** sysfs device path of a virtio-blk disk at guest PCI path `pciPath` (`"02"`, `"10/00"`). */
function sysfsPattern(pciPath: string): RegExp {
  const [root, ...rest] = pciPath.split('/');
  const bridges = rest.map((s) => `/0000:[0-9a-f]{2}:${s}\\.0`).join('');
  return new RegExp(`/pci0000:00/0000:00:${root}\\.0${bridges}/virtio\\d+/block/vd[a-z]+$`);
}

async function initdata(t: ExecutionContext, img: NamedGuestImage): Promise<void> {
  const pod = initdataPod();
  t.teardown(() => pod.cleanup());
  const id = pod.plan.initdata!;
  t.true(
    pod.plan.coldplugDevices.some((d) => d.id === id.device.id),
    'the initdata disk is cold-plugged',
  );
  t.true(id.device.readOnly, 'read-only');
  const consoleLog = path.join(pod.dir, 'console.log');
  const booted = await bootAgentGuest({
    plan: pod.plan,
    config: pod.hv,
    image: img.image,
    runDir: path.join(pod.dir, 'run'),
    consoleLog,
    bootTimeoutMs: BOOT_TIMEOUT_MS,
    // kata-agent logs the initdata digest at debug level; ours ignores the parameter.
    extraKernelParams: 'agent.log=debug',
  });
  if (booted.isErr())
    throw new Error(
      `${booted.error.message}${'console' in booted.error ? `\nconsole:\n${booted.error.console}` : ''}`,
    );
  const g = booted.value;
  track(g.vm.vm.pid, g.vm.vm.exited);
  t.teardown(() => g.stop());
  const [sb] = pod.plan.containers;
  try {
    await createSandbox(g.agent, pod.plan);
    const target = { kind: 'unix' as const, path: g.vm.agentSocket };
    await prepareContainer(g.agent, target, g.vm.vm.qmp, sb!);
    const created = await g.agent.createContainer(
      fromJson(CreateContainerRequestSchema, sb!.createContainer),
    );
    if (created.isErr()) throw new Error(`CreateContainer: ${created.error.message}`);
    (await g.agent.startContainer(sb!.id))._unsafeUnwrap();

    // The disk, from inside the guest: every virtio disk's sysfs path, read-only flag and size.
    const [out, code] = await sh(
      g.agent,
      sb!.id,
      'for b in /sys/block/vd*; do echo "$(readlink -f $b) ro=$(cat $b/ro) sectors=$(cat $b/size)"; done',
    );
    t.log(`[${img.name}] guest disks:\n${out}`);
    t.is(code, 0);
    const pattern = sysfsPattern(id.device.pciPath!);
    const disk = out
      .split('\n')
      .map((l) => l.split(' '))
      .filter(([p]) => p !== undefined && pattern.test(p));
    t.is(disk.length, 1, `one disk at PCI path ${id.device.pciPath} (${pattern})`);
    t.deepEqual(
      disk[0]?.slice(1),
      ['ro=1', `sectors=${id.imageBytes / 512}`],
      'the initdata disk: read-only, the image size',
    );

    const log = readFileSync(consoleLog, 'utf8');
    if (img.name === 'kata-agent') {
      t.regex(log, /Initdata version: 0\.1\.0/, 'kata-agent read and parsed the initdata');
      const digest = /Initdata digest: ([A-Za-z0-9+/=]+)/.exec(log)?.[1];
      t.log(`[kata-agent] digest ${digest}, plan ${id.digest} (${id.algorithm}, ${id.platform})`);
      t.is(digest, id.digest, "kata-agent's initdata digest is the plan's");
    } else {
      t.notRegex(
        log,
        /Initdata/,
        'our agent does nothing with initdata (the disk is only present)',
      );
    }

    (await g.agent.signalProcess(sb!.id, '', 9))._unsafeUnwrap();
    await within(STEP_TIMEOUT_MS, g.agent.waitProcess(sb!.id, ''), 'WaitProcess sandbox');
    (await g.agent.removeContainer(sb!.id))._unsafeUnwrap();
    (await g.agent.destroySandbox())._unsafeUnwrap();
  } catch (e) {
    t.log(`console:\n${logTail(consoleLog, 6000)}`);
    throw e;
  }
  await g.stop();
  t.false(alive(g.vm.vm.pid), 'no QEMU left');
}

forEachGuestImage(
  'initdata from cc_init_data: the cold-plugged read-only disk at its PCI path; kata-agent reads it and its digest is the plan’s',
  initdata,
  {
    timeout: 420_000,
    needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')],
  },
);
