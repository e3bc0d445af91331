// The whole Task service under a real containerd 1.6 with the lifecycle's test hooks: a real
// QEMU kept paused (KATA_TS_QEMU_PAUSED), real cgroups and state, and a host-side kata-ts-agent
// standing in for the guest's (KATA_TS_TEST_AGENT: its processes exit when signalled and echo
// stdin to stdout). shared_fs = "none" with force guest pull, so the planner needs no shared fs:
// ctr runs a spec file (`ctr oci spec` + the CRI image-name annotation guest pull needs; ctr 1.6
// has no --annotation) and so sends no rootfs mounts. What runs in a real guest is
// shim-guest.spec.ts.
import { vmProcesses } from '../containerd/daemon-pods.js';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { requireAgentBinary } from '../agent/agent-harness.js';
import { alive, type PrivateContainerd } from '../containerd/containerd-harness.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import {
  containerdWithShim,
  guestBuilt,
  hookConfig,
  RUNTIME,
  specFile,
  tasks,
  until,
} from './shim-harness.js';
import { gated, needs } from '../harness/prereq.js';

const hookTest = gated(needs.root(), needs.containerd(), needs.qemu(), needs.guest()).serial;

async function withHooks(t: ExecutionContext): Promise<PrivateContainerd> {
  t.timeout(240_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-hooks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'agent.sock');
  const agent = spawn(requireAgentBinary(), ['--listen', `unix:${socket}`, '--root', dir], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => agent.once('exit', r));
  t.teardown(async () => {
    agent.kill('SIGKILL');
    await exited;
  });
  const { containerd } = await containerdWithShim(t, {
    KATA_TS_CONFIG: hookConfig(dir),
    KATA_TS_TEST_AGENT: socket,
    KATA_TS_QEMU_PAUSED: '1',
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  t.teardown(() => {
    if (!t.passed) t.log(containerd.logTail(40));
  });
  return containerd;
}

/** QEMU processes, kata-ts state, rootfs mounts and container cgroups still there. */
async function leftovers(c: PrivateContainerd): Promise<string[]> {
  const left: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.startsWith('/usr/bin/qemu') && cmd.includes('/run/kata-ts/')) {
        // Only QEMUs of this containerd's namespace: their root is its private /run.
        const ns = readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(c.dir);
        if (ns) left.push(`qemu ${pid}`);
      }
    } catch {
      // gone
    }
  }
  const { stdout } = await c.inside(
    'sh',
    '-c',
    'ls /run/kata-ts 2>/dev/null; grep -c " /run/kata-ts\\| .*/rootfs " /proc/self/mountinfo || true',
  );
  left.push(
    ...stdout
      .trim()
      .split('\n')
      .filter((l) => l !== '' && l !== '0'),
  );
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

hookTest(
  'a task is created, listed RUNNING, killed to STOPPED with 137, deleted; the shim exits and nothing is left',
  async (t) => {
    const c = await withHooks(t);
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'sleeper', ['sleep', '1000']),
      'sleeper',
    );
    t.is((await tasks(c)).get('sleeper'), 'RUNNING');
    const shims = c.shimPids();
    t.is(shims.length, 1);
    const { stdout: ps } = await c.ctr('task', 'ps', 'sleeper');
    t.regex(ps, /^PID\s+INFO\n\d+/);
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'sleeper');
    await until('the task to stop', async () => (await tasks(c)).get('sleeper') === 'STOPPED');
    const { stdout: ls } = await c.ctr('task', 'ls');
    t.regex(ls, /sleeper\s+\d+\s+STOPPED/);
    await c.ctr('task', 'delete', 'sleeper');
    await c.ctr('containers', 'delete', 'sleeper');
    await until('the shim to exit', () => shims.every((p) => !alive(p)));
    t.deepEqual(await leftovers(c), []);
  },
);

hookTest(
  'stdin written by ctr comes back on its stdout through the agent; the exit status is the task’s',
  async (t) => {
    const c = await withHooks(t);
    const spec = await specFile(c, 'echo-in', ['cat']);
    const run = spawn(
      'nsenter',
      [
        '-t',
        String(c.holderPid),
        '--mount',
        '--pid',
        '--',
        'sh',
        '-c',
        `echo hello-from-stdin | ctr --address ${c.address} --namespace ${c.namespace} run --rm --runtime ${RUNTIME} --config ${spec} echo-in; echo "exit=$?"`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => void run.kill('SIGKILL'));
    let stdout = '';
    run.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const done = new Promise((r) => run.once('close', r));
    // The stand-in agent's process ends only when signalled: signal it once the echo came back.
    await until('the echo of stdin', () => stdout.includes('hello-from-stdin'), 60_000);
    await c.ctr('task', 'kill', '--signal', 'SIGTERM', 'echo-in');
    await done;
    t.is(stdout, 'hello-from-stdin\nexit=143\n');
    await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)));
    t.deepEqual(await leftovers(c), []);
  },
);

hookTest(
  'a shim killed with -9 is cleaned up by containerd calling delete: no VM, state, cgroup',
  async (t) => {
    const c = await withHooks(t);
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'victim', ['sleep', '1000']),
      'victim',
    );
    const shims = c.shimPids();
    t.true(shims.length >= 1);
    t.notDeepEqual(await leftovers(c), []);
    for (const pid of shims) process.kill(pid, 'SIGKILL');
    await until(
      'containerd to see the task stopped',
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
  },
);

/** Host pids of QEMUs whose command line names this containerd's sandboxes. */
/** QEMUs of this containerd's sandboxes (children of the one daemon, or adopted after a restart). */
function qemus(c: PrivateContainerd): number[] {
  return vmProcesses(c).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('qemu'));
}

hookTest(
  'two containers of one CRI pod share one shim and one VM; the sandbox goes last',
  async (t) => {
    const c = await withHooks(t);
    const pod = { 'io.kubernetes.cri.sandbox-id': 'pod-a' };
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'pod-a', ['pause'], {
        ...pod,
        'io.kubernetes.cri.container-type': 'sandbox',
      }),
      'pod-a',
    );
    const shims = c.shimPids();
    const vms = qemus(c);
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'app', ['sleep', '1000'], {
        ...pod,
        'io.kubernetes.cri.container-type': 'container',
      }),
      'app',
    );
    const ls = await tasks(c);
    t.deepEqual([ls.get('pod-a'), ls.get('app')], ['RUNNING', 'RUNNING']);
    t.deepEqual(c.shimPids(), shims, 'the member joined the one host-wide shim');
    t.is(vms.length, 1);
    t.deepEqual(qemus(c), vms, 'and its VM');
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'app');
    await until('the member to stop', async () => (await tasks(c)).get('app') === 'STOPPED');
    await c.ctr('task', 'delete', 'app');
    t.deepEqual(qemus(c), vms, 'the VM stays while the sandbox task runs');
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'pod-a');
    await until('the sandbox to stop', async () => (await tasks(c)).get('pod-a') === 'STOPPED');
    await c.ctr('task', 'delete', 'pod-a');
    for (const id of ['app', 'pod-a']) await c.ctr('containers', 'delete', id);
    await until('the shim to exit', () => shims.every((p) => !alive(p)));
    t.deepEqual(await leftovers(c), []);
  },
);

hookTest(
  'an exec runs beside the task, echoes its stdin, is killed by exec id and reports its own status',
  async (t) => {
    const c = await withHooks(t);
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'host', ['sleep', '1000']),
      'host',
    );
    const exec = spawn(
      'nsenter',
      [
        '-t',
        String(c.holderPid),
        '--mount',
        '--pid',
        '--',
        'sh',
        '-c',
        `echo from-exec | ctr --address ${c.address} --namespace ${c.namespace} task exec --exec-id e1 host cat; echo "exit=$?"`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.teardown(() => void exec.kill('SIGKILL'));
    let out = '';
    exec.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise((r) => exec.once('close', r));
    // The stand-in agent's exec ends only when signalled: signal it once its echo came back.
    await until('the exec to echo its stdin', () => out.includes('from-exec'), 60_000);
    await c.ctr('task', 'kill', '--exec-id', 'e1', '--signal', 'SIGINT', 'host');
    await done;
    t.is(out, 'from-exec\nexit=130\n');
    t.is((await tasks(c)).get('host'), 'RUNNING', 'the task outlives its exec');
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'host');
    await until('the task to stop', async () => (await tasks(c)).get('host') === 'STOPPED');
    await c.ctr('task', 'delete', 'host');
    await c.ctr('containers', 'delete', 'host');
    await until('the shim to exit', () => c.shimPids().length === 0);
    t.deepEqual(await leftovers(c), []);
  },
);
