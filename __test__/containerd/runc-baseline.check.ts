// A harness check, not a kata-ts test: the private containerd harness, proven with Debian's runc
// shim (io.containerd.runc.v2); the kata-ts shim tests use the same harness with `--runtime
// io.containerd.kata-ts.v2`. Not a `.spec.ts`, so the test run does not count it:
// scripts/run-tests.sh reports it as `check harness-runc`
// (`npx ava __test__/containerd/runc-baseline.check.ts`).
// Serial: each test starts its own containerd; two cores are shared with other suites.
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { busyboxArchive, BUSYBOX_IMAGE } from './busybox-image.js';
import { alive, startContainerd, type PrivateContainerd } from './containerd-harness.js';

const RUNC = 'io.containerd.runc.v2';

async function containerdWithBusybox(
  t: ExecutionContext,
  shimDirs: string[] = [],
): Promise<PrivateContainerd> {
  const archive = busyboxArchive();
  const c = await startContainerd({ shimDirs });
  t.teardown(() => c.stop());
  await c.ctr('images', 'import', archive);
  return c;
}

/** Task table of `ctr task ls` as id → status. */
async function tasks(c: PrivateContainerd): Promise<Map<string, string>> {
  const { stdout } = await c.ctr('task', 'ls');
  const rows = stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
  return new Map(rows.map((r) => [r[0]!, r[2]!]));
}

async function until(what: string, probe: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial('the imported busybox image is listed under its name', async (t) => {
  const c = await containerdWithBusybox(t);
  const { stdout } = await c.ctr('images', 'ls', '-q');
  t.deepEqual(stdout.trim().split('\n'), [BUSYBOX_IMAGE]);
});

test.serial('ctr run --rm with the runc shim prints the output of echo', async (t) => {
  const c = await containerdWithBusybox(t);
  const { stdout } = await c.ctr(
    'run',
    '--rm',
    '--runtime',
    RUNC,
    BUSYBOX_IMAGE,
    'echo-1',
    'echo',
    'hello',
  );
  t.is(stdout, 'hello\n');
  t.deepEqual([...(await tasks(c)).keys()], []);
  const { stdout: containers } = await c.ctr('containers', 'ls', '-q');
  t.is(containers.trim(), '');
});

test.serial('a long-running task is listed, killed and deleted, and its shim exits', async (t) => {
  const c = await containerdWithBusybox(t);
  await c.ctr(
    'run',
    '-d',
    '--null-io',
    '--runtime',
    RUNC,
    BUSYBOX_IMAGE,
    'sleeper',
    'sleep',
    '1000',
  );
  t.is((await tasks(c)).get('sleeper'), 'RUNNING');
  const shims = c.shimPids();
  t.is(shims.length, 1, 'one shim for the task, reparented to the namespace holder');
  // sleep is PID 1 of its pid namespace and has no SIGTERM handler: only SIGKILL ends it.
  await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'sleeper');
  await until('the task to stop', async () => (await tasks(c)).get('sleeper') === 'STOPPED');
  await c.ctr('task', 'delete', 'sleeper');
  await c.ctr('containers', 'delete', 'sleeper');
  t.false((await tasks(c)).has('sleeper'));
  await until('the shim to exit', async () => !alive(shims[0]!));
  t.deepEqual(c.shimPids(), []);
});

test.serial(
  'stop() leaves no process, mount, cgroup or file behind, even with a task running',
  async (t) => {
    const c = await containerdWithBusybox(t);
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      RUNC,
      BUSYBOX_IMAGE,
      'left-running',
      'sleep',
      '1000',
    );
    const shims = c.shimPids();
    t.true(hierarchies().some((h) => existsSync(`${h}/${c.namespace}/left-running`)));
    await c.stop();
    for (const pid of [c.containerdPid, c.holderPid, ...shims])
      t.false(alive(pid), `pid ${pid} is gone`);
    t.false(existsSync(c.dir));
    t.false(readFileSync('/proc/self/mountinfo', 'utf8').includes(c.dir));
    t.deepEqual(
      hierarchies().filter((h) => existsSync(`${h}/${c.namespace}`)),
      [],
    );
    // containerd and its shims name the test dir on their command lines: none may remain.
    const stale = readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(c.dir);
        } catch {
          return false;
        }
      });
    t.deepEqual(stale, []);
  },
);

test.serial('a shim on the harness PATH is started the way peers.md describes', async (t) => {
  // A wrapper named like the kata-ts shim will be: it records its invocation, then is runc's shim.
  const bin = mkdtempSync(join(tmpdir(), 'kata-ts-shim-bin-'));
  t.teardown(() => rmSync(bin, { recursive: true, force: true }));
  const script =
    '#!/bin/sh\nprintf "%s|%s|%s\\n" "$*" "$PWD" "$TTRPC_ADDRESS" >> /run/probe-shim.log\nexec /usr/bin/containerd-shim-runc-v2 "$@"\n';
  writeFileSync(join(bin, 'containerd-shim-probe-v2'), script);
  chmodSync(join(bin, 'containerd-shim-probe-v2'), 0o755);
  const c = await containerdWithBusybox(t, [bin]);
  const { stdout } = await c.ctr(
    'run',
    '--rm',
    '--runtime',
    'io.containerd.probe.v2',
    BUSYBOX_IMAGE,
    'probe-1',
    'echo',
    'hello',
  );
  t.is(stdout, 'hello\n');
  const bundle = `${c.dir}/state/io.containerd.runtime.v2.task/${c.namespace}/probe-1`;
  const calls = (await c.inside('cat', '/run/probe-shim.log')).stdout
    .trim()
    .split('\n')
    .map((l) => l.split('|'));
  const common = `-namespace ${c.namespace} -address ${c.address} -publish-binary /usr/bin/containerd -id probe-1`;
  t.deepEqual(calls, [
    [`${common} start`, bundle, c.ttrpcAddress],
    [`${common} -bundle ${bundle} delete`, bundle, c.ttrpcAddress],
  ]);
});
