// The shim's protocol with a real containerd 1.6 (Go ttrpc client, its events service), without
// a VM: start/serve/delete, a Create failure reaching ctr with the lifecycle's message, and
// events forwarded to containerd's exchange.
import path from 'node:path';
import { pino } from 'pino';
import { TaskExitSchema } from '../../ts/gen/containerd/events/task_pb.js';
import { socketAddress } from '../../ts/shim/address.js';
import { EventPublisher } from '../../ts/shim/events.js';
import { BUSYBOX_IMAGE } from '../containerd/busybox-image.js';
import { alive } from '../containerd/containerd-harness.js';
import { containerdWithShim, RUNTIME, tasks, until } from './shim-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.containerd());

test.serial(
  'a Create the lifecycle refuses reaches ctr with its message; the shim exits and nothing is left',
  async (t) => {
    const { containerd: c } = await containerdWithShim(t, {
      KATA_TS_CONFIG: '/nonexistent/configuration.toml',
    });
    const e = await t.throwsAsync(
      c.ctr('run', '--rm', '--null-io', '--runtime', RUNTIME, BUSYBOX_IMAGE, 'refused', 'true'),
    );
    t.regex(e!.message, /nonexistent\/configuration\.toml/);
    t.false((await tasks(c)).has('refused'));
    await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)));
    const bundle = path.join(c.dir, 'state/io.containerd.runtime.v2.task', c.namespace, 'refused');
    const { stdout } = await c.inside(
      'sh',
      '-c',
      `ls /run/containerd/s 2>/dev/null | wc -l; grep -c ' ${bundle}' /proc/self/mountinfo || true; ls /run/kata-ts 2>/dev/null | wc -l`,
    );
    t.deepEqual(stdout.trim().split('\n'), ['0', '0', '0']);
  },
);

test.serial('events are forwarded to containerd under the shim namespace in order', async (t) => {
  const { containerd: c } = await containerdWithShim(t, {});
  const watcher = c.spawnCtr('events');
  let seen = '';
  watcher.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
  t.teardown(() => void watcher.kill('SIGKILL'));
  await new Promise((r) => setTimeout(r, 500));
  // The publisher runs in this process, outside containerd's mount namespace: the ttrpc socket
  // lives in the test dir, reachable from here.
  const events = new EventPublisher(c.ttrpcAddress, c.namespace, pino({ level: 'silent' }));
  for (const k of [1, 2, 3])
    await events.publish('/tasks/exit', TaskExitSchema, {
      containerId: `c${k}`,
      id: `c${k}`,
      pid: 42,
      exitStatus: k,
    });
  await events.close();
  await until(
    'ctr events to print them',
    () => (seen.match(/\/tasks\/exit/g) ?? []).length === 3,
    10_000,
  );
  const lines = seen.trim().split('\n');
  t.true(
    lines.every((l) => l.includes(c.namespace) && l.includes('/tasks/exit')),
    seen,
  );
  t.deepEqual(
    lines.map((l) => /"container_id":"(c\d)"/.exec(l)?.[1]),
    ['c1', 'c2', 'c3'],
  );
  t.regex(lines[1]!, /"exit_status":2/);
});

test.serial(
  "the shim socket address is the one containerd's runc shim computes for the same id",
  async (t) => {
    const { containerd: c } = await containerdWithShim(t, {});
    await c.ctr(
      'run',
      '-d',
      '--null-io',
      '--runtime',
      'io.containerd.runc.v2',
      BUSYBOX_IMAGE,
      'addr-1',
      'sleep',
      '1000',
    );
    const bundle = path.join(c.dir, 'state/io.containerd.runtime.v2.task', c.namespace, 'addr-1');
    const { stdout } = await c.inside('cat', path.join(bundle, 'address'));
    t.is(stdout.trim(), socketAddress(c.address, c.namespace, 'addr-1'));
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'addr-1');
  },
);
