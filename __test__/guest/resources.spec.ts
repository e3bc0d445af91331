// Container resources in the guest, once per agent image (forEachGuestImage: our agent and
// upstream kata-agent 4.1.0, the judge; the host side is the same). One boot per image: the
// planned pod's app container gets its own `linux.cgroupsPath`, a memory, CPU and pids limit,
// and CAP_SYS_ADMIN to mount cgroup2 at /cg; its init is a small shell that runs the lines
// written to its stdin (kata-agent 4.1.0's ExecProcess fails in this guest, see
// agent-requests.spec.ts, so nothing here needs an exec). Asserted from inside the guest:
// - the container's cgroup files (memory.max, cpu.max, pids.max) hold the requested limits;
// - after UpdateContainer they hold the new ones;
// - StatsContainer: memory usage > 0 with the limit, CPU usage grows while a busy loop runs,
//   pids.current as the cgroup counts it (ours also reports the guest's interfaces);
// - quota -1 lifts the CPU limit (`max`);
// - an init allocating past memory.max is OOM-killed: GetOOMEvent answers the container id and
//   WaitProcess reports 137 (SIGKILL).
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { AgentClient } from '../../ts/agent/client.js';
import {
  StatsContainerRequestSchema,
  StatsContainerResponseSchema,
  type StatsContainerResponse,
} from '../../ts/gen/agent_pb.js';
import { bootAgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { logTail } from '../../ts/qemu/vm.js';
import type { ContainerPlan } from '../../ts/plan/plan.js';
import { needs } from '../harness/prereq.js';
import { track } from '../qemu/qemu-harness.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';
import {
  createAndStart,
  createSandbox,
  podFixture,
  prepareContainer,
  STEP_TIMEOUT_MS,
  within,
} from './planned-pod.js';

const BOOT_TIMEOUT_MS = 120_000;
const MiB = 1024 * 1024;
const CGROUP_PATH = '/kata-ts-res/app';
/** The app's init: mounts cgroup2, finds its own cgroup, then runs each stdin line. */
const APP_SCRIPT = [
  'mkdir -p /cg && mount -t cgroup2 none /cg || echo "mount failed"',
  'p=$(sed -n "s/^0:://p" /proc/self/cgroup); d=/cg${p%/}',
  'echo "cg=$p"; echo =done=',
  'while read -r l; do eval "$l"; echo =done=; done',
].join('\n');

type Json = Record<string, any>;

/** The app container with its own cgroup, limits and CAP_SYS_ADMIN (for the cgroup2 mount). */
function withLimits(c: ContainerPlan): ContainerPlan {
  const req = structuredClone(c.createContainer) as Json;
  const linux = (req.OCI.Linux ??= {});
  linux.CgroupsPath = CGROUP_PATH;
  linux.Resources = {
    Memory: { Limit: String(64 * MiB) },
    CPU: { Quota: '50000', Period: '100000' },
    Pids: { Limit: '64' },
  };
  const caps = req.OCI.Process.Capabilities as Json;
  for (const set of ['Bounding', 'Effective', 'Permitted'])
    caps[set] = [...new Set([...(caps[set] ?? []), 'CAP_SYS_ADMIN'])];
  req.OCI.Process.NoNewPrivileges = false;
  return { ...c, createContainer: req as ContainerPlan['createContainer'] };
}

/** Writes a line to the app init's stdin and reads its output up to `=done=`. */
async function sh(agent: AgentClient, cid: string, line: string): Promise<string> {
  if (line !== '') (await agent.writeStdin(cid, '', Buffer.from(`${line}\n`)))._unsafeUnwrap();
  let text = '';
  while (!text.includes('=done=\n')) {
    const r = await within(STEP_TIMEOUT_MS, agent.readStdout(cid, '', 65536), `ReadStdout ${line}`);
    if (r.isErr()) throw new Error(`ReadStdout after ${line}: ${r.error.message}; got ${text}`);
    if (r.value.length === 0) throw new Error(`EOF after ${line}; got ${text}`);
    text += Buffer.from(r.value).toString('utf8');
  }
  return text.replace('=done=\n', '').trim();
}

function stats(agent: AgentClient, cid: string): Promise<StatsContainerResponse> {
  return agent
    .call(
      'grpc.AgentService',
      'StatsContainer',
      StatsContainerRequestSchema,
      StatsContainerResponseSchema,
      { containerId: cid },
      STEP_TIMEOUT_MS,
    )
    .match(
      (r) => r,
      (e) => {
        throw new Error(`StatsContainer ${cid}: ${e.message}`);
      },
    );
}

async function resources(t: ExecutionContext, img: NamedGuestImage): Promise<void> {
  const f = podFixture('virtio-blk-pci', {
    sandboxArgs: ['sleep', '3601'],
    appArgs: ['sh', '-c', APP_SCRIPT],
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
  const [sb, plainApp] = f.plan.containers;
  const app = withLimits(plainApp!);
  const target = { kind: 'unix' as const, path: g.vm.agentSocket };
  try {
    await createSandbox(g.agent, f.plan);
    for (const c of [sb!, app]) {
      await prepareContainer(g.agent, target, g.vm.vm.qmp, c);
      await createAndStart(g.agent, c);
    }
    const a = app.id;
    const run = (line: string) => sh(g.agent, a, line);
    const cg = await run('');
    t.log(`[${img.name}] ${cg}`);
    t.notRegex(cg, /mount failed/);
    const limits = () =>
      run('echo "$(cat $d/memory.max) | $(cat $d/cpu.max) | $(cat $d/pids.max)"');

    // Known upstream defect (README "Guest images"): kata-agent 4.1.0 converts LinuxResources
    // with `if !resources.has_Pids()` (libs/protocols/src/trans.rs), so a pids limit it is sent is
    // dropped (pids.max stays `max`, StatsContainer reports 0). Ours enforces it.
    const pidsMax = (n: number) => (img.name === 'kata-agent' ? 'max' : String(n));
    t.is(
      await limits(),
      `${64 * MiB} | 50000 100000 | ${pidsMax(64)}`,
      'limits of CreateContainer',
    );

    const updated = await g.agent.updateContainer({
      containerId: a,
      resources: {
        Memory: { Limit: BigInt(96 * MiB) },
        CPU: { Quota: 20_000n, Period: 100_000n },
        Pids: { Limit: 32n },
      },
    });
    t.true(updated.isOk(), `UpdateContainer: ${updated.isErr() ? updated.error.message : ''}`);
    t.is(
      await limits(),
      `${96 * MiB} | 20000 100000 | ${pidsMax(32)}`,
      'limits after UpdateContainer',
    );

    // StatsContainer while a busy loop runs in the container.
    await run('(while :; do :; done) & echo $! >/tmp/busy');
    const s1 = await stats(g.agent, a);
    await new Promise((r) => setTimeout(r, 3000));
    const s2 = await stats(g.agent, a);
    const pidsNow = Number(await run('cat $d/pids.current'));
    await run('kill $(cat /tmp/busy)');
    const cpu1 = s1.cgroupStats?.cpuStats?.cpuUsage?.totalUsage ?? 0n;
    const cpu2 = s2.cgroupStats?.cpuStats?.cpuUsage?.totalUsage ?? 0n;
    t.log(
      `[${img.name}] cpu ${cpu1} → ${cpu2} ns; memory ${s2.cgroupStats?.memoryStats?.usage?.usage} B; pids ${s2.cgroupStats?.pidsStats?.current}/${pidsNow}`,
    );
    t.true(cpu2 > cpu1, `CPU usage grows while the loop runs: ${cpu1} → ${cpu2}`);
    const mem = s2.cgroupStats?.memoryStats?.usage;
    t.true((mem?.usage ?? 0n) > 0n, 'memory usage > 0');
    t.is(mem?.limit, BigInt(96 * MiB), 'memory limit as updated');
    const pids = s2.cgroupStats?.pidsStats;
    t.is(pids?.limit, img.name === 'kata-agent' ? 0n : 32n);
    // sh (init) and the loop; the shell forks for `cat` around the reading, so allow one more.
    t.true(
      (pids?.current ?? 0n) >= 2n && Math.abs(Number(pids?.current) - pidsNow) <= 1,
      `pids.current ${pids?.current} vs the cgroup's ${pidsNow}`,
    );
    if (img.name === 'ours')
      t.true(
        s2.networkStats.every((n) => n.name !== 'lo'),
        'guest interfaces, loopback left out',
      );

    // Quota -1 lifts the CPU limit (`max`), so the allocation below is not throttled.
    const lifted = await g.agent.updateContainer({
      containerId: a,
      resources: { CPU: { Quota: -1n, Period: 100_000n } },
    });
    t.true(
      lifted.isOk(),
      `UpdateContainer quota -1: ${lifted.isErr() ? lifted.error.message : ''}`,
    );
    // Seen with kata-agent 4.1.0: it answers OK to quota -1 but cpu.max keeps the old quota
    // (not verified in its source yet; a false OK, not a different reading of the request).
    t.is(
      await run('cat $d/cpu.max'),
      img.name === 'kata-agent' ? '20000 100000' : 'max 100000',
      'quota -1 is max',
    );

    // OOM: the init shell itself grows past memory.max (a command substitution that never ends).
    // KNOWN OPEN MISMATCH (README "Guest images"): on kata-agent 4.1.0 neither WaitProcess nor
    // GetOOMEvent answered within 90 s in the CI rehearsal (not yet traced: the hog may never
    // run, or the OOM is not reported); KATA_TS_KNOWN_DEFECTS=1 runs that half.
    if (img.name === 'kata-agent' && process.env['KATA_TS_KNOWN_DEFECTS'] !== '1') {
      t.log('kata-agent OOM: known open mismatch, not run (KATA_TS_KNOWN_DEFECTS=1 runs it)');
      return;
    }
    const oom = within(90_000, g.agent.getOomEvent(), 'GetOOMEvent');
    // A failed WaitProcess must not leave the GetOOMEvent wait to reject after the test.
    oom.catch(() => undefined);
    (await g.agent.writeStdin(a, '', Buffer.from("x=$(tr '\\0' a </dev/zero)\n")))._unsafeUnwrap();
    const exit = await within(90_000, g.agent.waitProcess(a, ''), 'WaitProcess app');
    t.is(exit._unsafeUnwrap(), 137, 'the OOM-killed init exits by SIGKILL');
    t.is((await oom)._unsafeUnwrap(), a, 'GetOOMEvent names the container');
  } catch (e) {
    t.log(`console:\n${logTail(consoleLog, 6000)}`);
    throw e;
  }
}

forEachGuestImage(
  'container resources: cgroup limits at create and after UpdateContainer, StatsContainer figures, an OOM kill reported by GetOOMEvent',
  resources,
  {
    timeout: 300_000,
    needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')],
  },
);
