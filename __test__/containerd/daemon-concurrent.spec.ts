// Ten pods created at once through a real containerd on the one kata-ts daemon all reach
// RUNNING: no lock serialises their boots, and each has its own state dir, VM and cgroups.
// Boots ten small TCG guests (run under `flock /tmp/kata-vm.lock`).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gated, needs } from '../harness/prereq.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { containerdWithShim, guestBuilt, guestConfig, tasks, until } from '../shim/shim-harness.js';
import { leftovers, removePods, runPod, shimProcesses, vmProcesses } from './daemon-pods.js';

const test = gated(
  needs.root(),
  needs.containerd(),
  guestBuilt ? null : 'guest not built (make guest)',
).serial;

test('ten pods created at once all run, each with its own VM, state dir and cgroup', async (t) => {
  t.timeout(900_000);
  const dir = mkdtempSync('/tmp/kata-ts-daemon-cfg-');
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = guestConfig(dir);
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(/^default_memory = .*$/m, 'default_memory = 256'),
  );
  const { containerd: c } = await containerdWithShim(t, {
    KATA_TS_CONFIG: config,
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  const ids = Array.from({ length: 10 }, (_, k) => `c${k}`);
  t.teardown(() => removePods(c, ids));
  const started = await Promise.allSettled(ids.map((id) => runPod(c, id)));
  t.deepEqual(
    started.flatMap((s, k) => (s.status === 'rejected' ? [`${ids[k]}: ${String(s.reason)}`] : [])),
    [],
  );
  await until(
    'every pod to run',
    async () => {
      const listed = await tasks(c);
      return ids.every((id) => listed.get(id) === 'RUNNING');
    },
    300_000,
  ).catch(() => undefined);
  const listed = await tasks(c);
  t.deepEqual(
    ids.filter((id) => listed.get(id) !== 'RUNNING'),
    [],
  );
  const { front, daemon } = shimProcesses(c);
  t.is(front.length, 1);
  t.is(daemon.length, 1);
  t.is(
    // QEMU itself: virtiofsd is /usr/lib/qemu/virtiofsd, so not "qemu" anywhere in the cmdline.
    vmProcesses(c).filter((p) =>
      path
        .basename(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0] ?? '')
        .startsWith('qemu-system'),
    ).length,
    10,
  );
  const { stdout } = await c.inside('ls', '/run/kata-ts');
  const dirs = stdout.trim().split('\n');
  for (const id of ids) t.true(dirs.includes(id), `state dir of ${id}`);
  for (const id of ids)
    t.true(
      hierarchies().some((h) => existsSync(`${h}/${c.namespace}/${id}`)),
      `cgroup of ${id}`,
    );
  await removePods(c, ids);
  t.deepEqual(await leftovers(c), []);
});
