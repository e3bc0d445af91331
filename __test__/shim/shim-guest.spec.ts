// The kata-ts shim under a real containerd with the built guest (build/guest: our agent as PID 1,
// TCG or KVM): ctr run prints what the container wrote inside the VM; a long-running task is
// listed, killed, deleted; a shim killed with -9 is cleaned up by containerd's `delete`; and no
// VM, mount, cgroup or state remains. Skipped until the guest is built (`make guest`) and the
// lifecycle runs a virtio-fs sandbox (containerd 1.6's snapshots here are overlay or native
// directories: they reach the guest only through the shared fs).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { ExecutionContext } from 'ava';
import {
  StateRequestSchema,
  StateResponseSchema,
} from '../../ts/gen/containerd/task/v2/shim_pb.js';
import { Status } from '../../ts/gen/containerd/types/task/task_pb.js';
import { callAsync } from '../../ts/native.js';
import { shimSocketOnHost } from '../containerd/daemon-pods.js';
import { TASK_SERVICE } from '../../ts/shim/task-service.js';
import { BUSYBOX_IMAGE } from '../containerd/busybox-image.js';
import { alive, type PrivateContainerd } from '../containerd/containerd-harness.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { unsupportedConfig } from '../../ts/lifecycle/host-files.js';
import { readConfig } from '../../ts/lifecycle/sandbox-inputs.js';
import {
  containerdWithShim,
  guestBuilt,
  guestConfig,
  RUNTIME,
  tasks,
  until,
} from './shim-harness.js';
import { gated, needs } from '../harness/prereq.js';

async function lifecycleRunsVirtioFs(): Promise<boolean> {
  const dir = mkdtempSync('/tmp/kata-ts-shim-probe-');
  try {
    const parsed = await readConfig('probe', guestConfig(dir));
    return parsed.isOk() && unsupportedConfig('probe', 'probe', parsed.value.config) === null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const ready = guestBuilt && (await lifecycleRunsVirtioFs());
// The guest boots under TCG (this host's KVM cannot boot a Debian kernel, peers.md): the shim's
// environment forces it with KATA_TS_QEMU_ACCEL.
const guestTest = gated(
  needs.root(),
  needs.containerd(),
  guestBuilt ? null : 'guest not built (make guest)',
  ready || !guestBuilt ? null : 'the lifecycle cannot run virtio-fs here',
).serial;

async function withGuest(t: ExecutionContext): Promise<PrivateContainerd> {
  t.timeout(300_000);
  const dir = mkdtempSync('/tmp/kata-ts-shim-cfg-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { containerd } = await containerdWithShim(t, {
    KATA_TS_CONFIG: guestConfig(dir),
    KATA_TS_LOG: 'debug',
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  t.teardown(() => {
    if (!t.passed) t.log(containerd.logTail(60));
  });
  return containerd;
}

/** What of the sandboxes is still there: QEMU/virtiofsd processes, mounts, state, cgroups. */
async function leftovers(c: PrivateContainerd): Promise<string[]> {
  const left: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(c.dir) && /qemu|virtiofsd/.test(cmd))
        left.push(`process ${pid} ${cmd.split('\0')[0]}`);
    } catch {
      // gone
    }
  }
  const { stdout } = await c.inside(
    'sh',
    '-c',
    "awk '$5 ~ /rootfs|kata/' /proc/self/mountinfo; ls /run/kata-ts 2>/dev/null || true",
  );
  left.push(...stdout.trim().split('\n').filter(Boolean));
  for (const h of hierarchies()) {
    try {
      for (const d of readdirSync(`${h}/${c.namespace}`, { withFileTypes: true }))
        if (d.isDirectory()) left.push(`cgroup ${h}/${c.namespace}/${d.name}`);
    } catch {
      // no subtree
    }
  }
  return left;
}

guestTest('ctr run --rm prints the output of echo run inside the guest VM', async (t) => {
  const c = await withGuest(t);
  const { stdout } = await c.ctr(
    'run',
    '--rm',
    '--runtime',
    RUNTIME,
    BUSYBOX_IMAGE,
    'echo-1',
    'sh',
    '-c',
    'echo hello; uname -r >&2',
  );
  t.is(stdout, 'hello\n');
  t.false((await tasks(c)).has('echo-1'));
  await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)));
  t.deepEqual(await leftovers(c), []);
});

guestTest('a long-running task is listed, killed and deleted; nothing remains', async (t) => {
  const c = await withGuest(t);
  await c.ctr(
    'run',
    '-d',
    '--null-io',
    '--runtime',
    RUNTIME,
    BUSYBOX_IMAGE,
    'sleeper',
    'sleep',
    '1000',
  );
  t.is((await tasks(c)).get('sleeper'), 'RUNNING');
  await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'sleeper');
  await until(
    'the task to stop',
    async () => (await tasks(c)).get('sleeper') === 'STOPPED',
    30_000,
  );
  await c.ctr('task', 'delete', 'sleeper');
  await c.ctr('containers', 'delete', 'sleeper');
  await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)));
  t.deepEqual(await leftovers(c), []);
});

guestTest('a shim killed with -9 is cleaned up by containerd calling delete', async (t) => {
  const c = await withGuest(t);
  await c.ctr(
    'run',
    '-d',
    '--null-io',
    '--runtime',
    RUNTIME,
    BUSYBOX_IMAGE,
    'victim',
    'sleep',
    '1000',
  );
  const shims = c.shimPids();
  t.true(shims.length >= 1);
  for (const pid of shims) process.kill(pid, 'SIGKILL');
  await until(
    'containerd to mark the task stopped',
    async () => (await tasks(c)).get('victim') !== 'RUNNING',
    30_000,
  );
  await c.ctr('task', 'delete', 'victim').catch(() => undefined);
  await c.ctr('containers', 'delete', 'victim');
  await until(
    'the sandbox to be cleaned up',
    async () => (await leftovers(c)).length === 0,
    30_000,
  ).catch(() => undefined);
  t.deepEqual(await leftovers(c), []);
});

guestTest(
  'Kill with all reaches an exec while the init traps the signal: the exec ends, the init runs on',
  async (t) => {
    const c = await withGuest(t);
    // The init ignores SIGUSR1; `sleep` in the exec dies of it (128 + 10). Without `all` only the
    // init would be signalled and the exec would run on.
    const script = 'trap "" USR1; while :; do sleep 1; done';
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      BUSYBOX_IMAGE,
      'trap-1',
      'sh',
      '-c',
      script,
    );
    t.teardown(async () => {
      await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'trap-1').catch(() => undefined);
      await until(
        'the task to stop',
        async () => (await tasks(c)).get('trap-1') !== 'RUNNING',
      ).catch(() => undefined);
      await c.ctr('task', 'delete', 'trap-1').catch(() => undefined);
      await c.ctr('containers', 'delete', 'trap-1').catch(() => undefined);
    });
    const exec = c.spawnCtr('task', 'exec', '--exec-id', 'e1', 'trap-1', 'sleep', '1000');
    t.teardown(() => void exec.kill('SIGKILL'));
    const execDone = new Promise<number | null>((r) => exec.once('exit', (code) => r(code)));
    const socket = shimSocketOnHost(c);
    const conn = (
      await callAsync((n) => n.dialAgent({ kind: 'unix', path: socket, timeoutMs: 2000 }))
    )._unsafeUnwrap();
    t.teardown(() => conn.close());
    const stateReq = Buffer.from(
      toBinary(StateRequestSchema, create(StateRequestSchema, { id: 'trap-1', execId: 'e1' })),
    );
    await until(
      'the exec to run',
      async () => {
        const r = await callAsync(() => conn.call(TASK_SERVICE, 'State', stateReq, 5000));
        return r.isOk() && fromBinary(StateResponseSchema, r.value).status === Status.RUNNING;
      },
      60_000,
    );
    await c.ctr('task', 'kill', '--all', '--signal', 'SIGUSR1', 'trap-1');
    const code = await Promise.race([
      execDone,
      new Promise<string>((r) => setTimeout(() => r('still running'), 30_000)),
    ]);
    t.is(code, 138);
    t.is((await tasks(c)).get('trap-1'), 'RUNNING');
  },
);
