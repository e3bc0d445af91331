// Every request kata-ts sends to a booted guest, asserted from inside the guest, once per agent
// image (forEachGuestImage: our agent and upstream kata-agent 4.1.0; the host side is the same
// and does not know which agent answers). One boot per image, to keep the suite's time sane:
// - CreateSandbox: the sandbox's hostname, the sandbox shm storage (`df` of /dev/shm), no
//   sandbox pidns (a container sees only its own processes);
// - volumes: /etc/resolv.conf (DNS) copied by the production copy engine, a memory emptyDir
//   (ephemeral storage with `size=`), a block volume (a host loop device hot-plugged as virtio-blk,
//   found by its PCI path and mounted);
// - processes: ExecProcess with stdin and stdout, SignalProcess (SIGTERM) and WaitProcess exit
//   codes (a plain exit, a signal);
// - vCPU hot-add through QMP + OnlineCPUMem: the guest sees the new CPU online;
// - DestroySandbox powers the guest off.
// Where the agents differ, kata-agent is the judge of what a request means; each difference is
// asserted per agent here and listed in the README (kata-agent 4.1.0 ignores `size=` of
// ephemeral storage).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { AgentClient } from '../../ts/agent/client.js';
import { bootAgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { resizeVcpus } from '../../ts/qemu/hotplug.js';
import { logTail } from '../../ts/qemu/vm.js';
import { execRequest } from '../../ts/shim/exec-spec.js';
import { needs } from '../harness/prereq.js';
import { alive, track } from '../qemu/qemu-harness.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';
import {
  createAndStart,
  createSandbox,
  podFixture,
  prepareContainer,
  removeContainer,
  SHM_SIZE_MIB,
  STEP_TIMEOUT_MS,
  within,
} from './planned-pod.js';

const BOOT_TIMEOUT_MS = 120_000;
const POWEROFF_TIMEOUT_MS = 20_000;
const HOSTNAME = 'kata-ts-pod';
const RESOLV = 'nameserver 192.0.2.53\nsearch pod.example\n';
const EMPTYDIR_MIB = 8;
const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
/** The app container's init: what CreateSandbox and the volumes made, seen from inside, then sleeps. */
const APP_SCRIPT = [
  'echo "hostname=$(hostname)"',
  'echo "shm=$(df -k /dev/shm | tail -1)"',
  'for p in /proc/[0-9]*; do echo "cmdline=$(tr "\\0" " " <$p/cmdline)"; done',
  'echo "resolv=$(cat /etc/resolv.conf | tr "\\n" "|")"',
  'echo w >/scratch/f && echo "scratch=$(cat /scratch/f) $(df -k /scratch | tail -1)"',
  'echo "block=$(cat /vol/block/marker) $(grep " /vol/block " /proc/mounts)"',
  'echo "=e""nd="', // not '=end=' itself: the script is in sh's cmdline, printed above
  'exec sleep 3602',
].join('\n');

/** The app container's volumes, made on the host in `dir`; `loop` is detached at cleanup. */
function volumes(dir: string, loop: { dev: string | null }): object[] {
  writeFileSync(path.join(dir, 'resolv.conf'), RESOLV);
  const emptyDir = path.join(
    dir,
    'kubelet/pods/0b5c8a8e-0000-4000-8000-000000000002/volumes/kubernetes.io~empty-dir/scratch',
  );
  mkdirSync(emptyDir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${EMPTYDIR_MIB}m`, 'kata-ts-empty', emptyDir]);
  const content = path.join(dir, 'block-content');
  mkdirSync(content);
  writeFileSync(path.join(content, 'marker'), 'block-volume\n');
  const image = path.join(dir, 'block.ext4');
  execFileSync('truncate', ['-s', '8M', image]);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', content, image]);
  loop.dev = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
  return [
    {
      destination: '/etc/resolv.conf',
      type: 'bind',
      source: path.join(dir, 'resolv.conf'),
      options: ['rbind', 'ro'],
    },
    { destination: '/scratch', type: 'bind', source: emptyDir, options: ['rbind', 'rw'] },
    { destination: '/vol/block', type: 'bind', source: loop.dev, options: ['rbind', 'rw'] },
  ];
}

let execs = 0;
interface Ran {
  readonly out: string;
  readonly code: number;
}

async function readAll(agent: AgentClient, cid: string, execId: string): Promise<string> {
  const chunks: Buffer[] = [];
  for (;;) {
    const r = await within(
      STEP_TIMEOUT_MS,
      agent.readStdout(cid, execId, 64 * 1024),
      `ReadStdout ${cid}/${execId}`,
    );
    if (r.isErr() || r.value.length === 0) break;
    chunks.push(Buffer.from(r.value));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** ExecProcess `args` in container `cid` (stdin written first if given), its stdout and status. */
async function exec(agent: AgentClient, cid: string, args: string[], stdin?: string): Promise<Ran> {
  const execId = `exec-${execs++}`;
  const process = {
    args,
    cwd: '/',
    env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
    user: { uid: 0, gid: 0 },
    capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
  };
  (await agent.execProcess(execRequest(cid, execId, process))).match(
    () => undefined,
    (e) => {
      throw new Error(`ExecProcess ${args.join(' ')}: ${e.message}`);
    },
  );
  if (stdin !== undefined)
    (await agent.writeStdin(cid, execId, Buffer.from(stdin)))._unsafeUnwrap();
  const out = await readAll(agent, cid, execId);
  const code = await within(
    STEP_TIMEOUT_MS,
    agent.waitProcess(cid, execId),
    `WaitProcess ${execId}`,
  );
  return { out, code: code._unsafeUnwrap() };
}

async function requests(t: ExecutionContext, img: NamedGuestImage): Promise<void> {
  const loop: { dev: string | null } = { dev: null };
  let emptyDir: string | null = null;
  const f = podFixture('virtio-blk-pci', {
    hostname: HOSTNAME,
    sandboxArgs: ['sleep', '3601'],
    appArgs: ['sh', '-c', APP_SCRIPT],
    appMounts: (dir) => {
      const v = volumes(dir, loop);
      emptyDir = (v[1] as { source: string }).source;
      return v;
    },
    maxVcpus: 2,
    onCleanup: () => {
      if (loop.dev !== null) execFileSync('losetup', ['-d', loop.dev]);
      loop.dev = null;
      if (emptyDir !== null) execFileSync('umount', [emptyDir]);
      emptyDir = null;
    },
  });
  t.teardown(() => f.cleanup());
  const consoleLog = path.join(f.dir, 'console.log');
  const booted = await bootAgentGuest({
    plan: f.plan,
    config: f.hv,
    image: img.image,
    runDir: path.join(f.dir, 'run'),
    consoleLog,
    bootTimeoutMs: BOOT_TIMEOUT_MS,
  });
  if (booted.isErr())
    throw new Error(
      `${booted.error.message}${'console' in booted.error ? `\nconsole:\n${booted.error.console}` : ''}`,
    );
  const g = booted.value;
  track(g.vm.vm.pid, g.vm.vm.exited);
  t.teardown(() => g.stop());
  const [sb, app] = f.plan.containers;
  const target = { kind: 'unix' as const, path: g.vm.agentSocket };
  t.deepEqual(
    app!.blockDevices.length,
    2,
    'the app container hot-plugs its rootfs and the block volume',
  );
  try {
    await createSandbox(g.agent, f.plan);
    for (const c of [sb!, app!]) {
      await prepareContainer(g.agent, target, g.vm.vm.qmp, c);
      await createAndStart(g.agent, c);
    }
    const a = app!.id;
    const run = (args: string[], stdin?: string) => exec(g.agent, a, args, stdin);

    // What the app's init printed: CreateSandbox and the volumes, as the container sees them.
    let text = '';
    while (!text.includes('=end=')) {
      const r = await within(STEP_TIMEOUT_MS, g.agent.readStdout(a, '', 65536), 'ReadStdout app');
      if (r.isErr() || r.value.length === 0) break;
      text += Buffer.from(r.value).toString('utf8');
    }
    t.log(`[${img.name}] app init output:\n${text}`);
    const field = (k: string) =>
      text
        .split('\n')
        .filter((l) => l.startsWith(`${k}=`))
        .map((l) => l.slice(k.length + 1));
    const kib = (row: string | undefined) => Number(row?.trim().split(/\s+/).at(-5));
    t.deepEqual(field('hostname'), [HOSTNAME], 'the hostname CreateSandbox set');
    const shmKib = kib(field('shm')[0]);
    t.log(`[${img.name}] /dev/shm ${shmKib} KiB (planned ${SHM_SIZE_MIB * 1024} KiB)`);
    if (img.name === 'ours') t.is(shmKib, SHM_SIZE_MIB * 1024, 'sandbox shm size');
    else t.true(shmKib > SHM_SIZE_MIB * 1024, 'kata-agent 4.1.0: default-size shm tmpfs');
    const cmdlines = field('cmdline');
    t.true(
      cmdlines.some((c) => c.startsWith('sh -c ')),
      `the container's own init: ${cmdlines.join('|')}`,
    );
    t.false(
      cmdlines.includes('sleep 3601 '),
      'no sandbox pidns: the sandbox container is not seen',
    );
    t.deepEqual(field('resolv'), [RESOLV.replace(/\n/g, '|')], 'DNS: resolv.conf copied');
    const scratch = field('scratch')[0] ?? '';
    t.regex(scratch, /^w /, 'the emptyDir is writable');
    const scratchKib = kib(scratch);
    t.log(`[${img.name}] emptyDir ${scratchKib} KiB (planned size=${EMPTYDIR_MIB * 1024} KiB)`);
    if (img.name === 'ours') t.is(scratchKib, EMPTYDIR_MIB * 1024, 'ephemeral size= honoured');
    else t.true(scratchKib > EMPTYDIR_MIB * 1024, 'kata-agent 4.1.0 mounts a default-size tmpfs');
    t.regex(
      field('block')[0] ?? '',
      /^block-volume \S+ \/vol\/block ext4 /,
      'block volume mounted',
    );

    // Processes (ExecProcess)
    {
      t.deepEqual(await run(['head', '-c', '6'], 'hello\nrest'), { out: 'hello\n', code: 0 });
      t.deepEqual(await run(['sh', '-c', 'echo bye; exit 7']), { out: 'bye\n', code: 7 });
      const sleeper = `exec-${execs}`;
      const slept = run(['sleep', '1000']);
      await new Promise((r) => setTimeout(r, 1_000));
      (await g.agent.signalProcess(a, sleeper, 15))._unsafeUnwrap();
      t.is((await slept).code, 128 + 15, 'WaitProcess after SIGTERM: 128 + signal');

      // vCPU hot-add
      (await resizeVcpus(g.vm.vm.qmp, 2))._unsafeUnwrap();
      // nb_cpus: the total to have online (kata-agent's meaning), as the lifecycle sends it.
      (await g.agent.onlineCpuMem({ wait: true, nbCpus: 2, cpuOnly: true }))._unsafeUnwrap();
      t.is((await run(['cat', '/sys/devices/system/cpu/online'])).out, '0-1\n', 'new vCPU online');
    }

    for (const c of [app!, sb!]) {
      (await g.agent.signalProcess(c.id, '', 9))._unsafeUnwrap();
      await within(STEP_TIMEOUT_MS, g.agent.waitProcess(c.id, ''), `WaitProcess ${c.id}`);
      await removeContainer(g.agent, g.vm.vm.qmp, c);
    }
    (await g.agent.destroySandbox())._unsafeUnwrap();
  } catch (e) {
    t.log(`console:\n${logTail(consoleLog, 6000)}`);
    throw e;
  }
  const poweredOff = await Promise.race([
    g.vm.vm.exited.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), POWEROFF_TIMEOUT_MS)),
  ]);
  t.true(poweredOff, 'DestroySandbox powers the guest off');
  await g.stop();
  t.false(alive(g.vm.vm.pid), 'no QEMU left');
}

forEachGuestImage(
  'CreateSandbox (hostname, shm, no sandbox pidns), resolv.conf, emptyDir size, block volume, exec stdin/stdout, signals, exit codes, vCPU hot-add, DestroySandbox power-off — seen inside the guest',
  requests,
  {
    timeout: 300_000,
    needs: [
      needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)'),
      needs.file('/usr/sbin/losetup', 'losetup'),
    ],
  },
);
