// The host-wide shim survives its daemon: three pods run through a real containerd, the node
// daemon is killed with -9 (by its pid), the VMs run on (own sessions, not its children's fate),
// the front restarts the daemon, which re-attaches to every sandbox from its state, and
// containerd's calls carry on: `ctr task ls` lists all three RUNNING, `ctr task exec` prints what
// the guest ran, kill and delete work, and nothing is left afterwards. Boots three TCG guests
// (run under `flock /tmp/kata-vm.lock`).
import { mkdtempSync, rmSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { gated, needs } from '../harness/prereq.js';
import { containerdWithShim, guestBuilt, guestConfig, tasks, until } from '../shim/shim-harness.js';
import { alive, type PrivateContainerd } from './containerd-harness.js';
import { leftovers, removePods, runPod, shimProcesses, vmProcesses } from './daemon-pods.js';

const test = gated(
  needs.root(),
  needs.containerd(),
  guestBuilt ? null : 'guest not built (make guest)',
).serial;

async function withGuest(t: ExecutionContext): Promise<PrivateContainerd> {
  t.timeout(600_000);
  const dir = mkdtempSync('/tmp/kata-ts-daemon-cfg-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { containerd } = await containerdWithShim(t, {
    KATA_TS_CONFIG: guestConfig(dir),
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  t.teardown(async () => {
    if (t.passed) return;
    t.log(containerd.logTail(60));
    t.log(
      await containerd.inside('sh', '-c', 'cat /run/kata-ts/*.log 2>&1 | tail -40').catch(String),
    );
  });
  return containerd;
}

test('kill -9 of the daemon with three pods running: ls, exec and delete still work, nothing left', async (t) => {
  const c = await withGuest(t);
  const ids = ['pod-a', 'pod-b', 'pod-c'];
  t.teardown(() => removePods(c, ids));
  for (const id of ids) await runPod(c, id);
  const before = shimProcesses(c);
  t.is(before.front.length, 1, 'one front for every pod');
  t.is(before.daemon.length, 1, 'one daemon for every pod');
  const vms = vmProcesses(c);
  t.true(vms.length >= 3, `a VM per pod: ${vms.length}`);

  process.kill(before.daemon[0]!, 'SIGKILL');
  await until('the daemon to die', () => !alive(before.daemon[0]!));
  t.deepEqual(
    vms.filter((p) => !alive(p)),
    [],
    'no VM died with the daemon',
  );

  // containerd's State has a 2 s deadline; the new daemon answers once it re-attached.
  let listed = new Map<string, string>();
  await until(
    'the restarted daemon to answer for every pod',
    async () => {
      listed = await tasks(c);
      return ids.every((id) => listed.get(id) === 'RUNNING');
    },
    120_000,
  ).catch(() => undefined);
  for (const id of ids) t.is(listed.get(id), 'RUNNING', `${id} after the kill`);
  const after = shimProcesses(c);
  t.deepEqual(after.front, before.front, 'the front held containerd’s connections');
  t.is(after.daemon.length, 1);
  t.not(after.daemon[0], before.daemon[0], 'a new daemon');

  const exec = await c.ctr('task', 'exec', '--exec-id', 'e1', 'pod-b', 'echo', 'hello');
  t.is(exec.stdout, 'hello\n');

  await removePods(c, ids);
  const listedAfter = await tasks(c);
  t.deepEqual([...listedAfter.keys()], []);
  await until(
    'the sandboxes to be gone',
    async () => (await leftovers(c)).length === 0,
    30_000,
  ).catch(() => undefined);
  t.deepEqual(await leftovers(c), []);
  t.deepEqual(c.shimPids().filter(alive), [], 'front and daemon ended when idle');
});
