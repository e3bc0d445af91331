// Real cgroup2 hierarchy at /sys/fs/cgroup/unified. This host offers only the hugetlb controller
// there: there are no cpu, cpuset, memory or pids controllers, so v2 limit files cannot be
// tested here. What exists is tested: create, cgroup.type, moving processes (whole processes,
// also when a thread is given), the missing-controller error, delete to the root.
import type { ExecutionContext } from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { call } from '../../ts/native.js';
import {
  createSandboxCgroups,
  deleteSandboxCgroups,
  placeVmm,
  type CgroupHost,
} from '../../ts/apply/cgroups.js';
import { planCgroups } from '../../ts/plan/cgroups.js';
import { readIds, removeSubtree, uniqueSubtree } from '../harness/cgroup-subtree.js';
import { multiThreaded, sleeper } from './processes.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root());

const UNIFIED = '/sys/fs/cgroup/unified';
const host: CgroupHost = { root: UNIFIED };

function subtree(t: ExecutionContext): string {
  const name = uniqueSubtree();
  t.teardown(() => removeSubtree(name));
  return name;
}

test('this host exposes no v2 cpu/memory controllers (what the limit tests cannot cover)', (t) => {
  const controllers = readFileSync(`${UNIFIED}/cgroup.controllers`, 'utf8').trim().split(/\s+/);
  t.false(controllers.includes('cpu'));
  t.false(controllers.includes('memory'));
});

test('v2: create a domain cgroup, move a process in, delete moves it to the root', (t) => {
  const sub = subtree(t);
  const m = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v2', root: UNIFIED, path: `${sub}/sandbox` }),
  )._unsafeUnwrap();
  const p = sleeper(t);
  m.create([]);
  t.is(readFileSync(`${UNIFIED}/${sub}/sandbox/cgroup.type`, 'utf8').trim(), 'domain');
  m.addProcess(p.pid);
  t.deepEqual(readIds(`${UNIFIED}/${sub}/sandbox/cgroup.procs`), [p.pid]);
  t.deepEqual(m.procs(), [p.pid]);
  m.delete();
  t.false(existsSync(`${UNIFIED}/${sub}/sandbox`));
  t.true(readIds(`${UNIFIED}/cgroup.procs`).includes(p.pid));
  m.delete();
});

test('v2: limits for a controller the hierarchy lacks fail naming the controller', (t) => {
  const sub = subtree(t);
  const m = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v2', root: UNIFIED, path: `${sub}/x` }),
  )._unsafeUnwrap();
  m.create([]);
  const e = call(() => m.setResources({ quotaUs: 10_000, periodUs: 100_000 }))._unsafeUnwrapErr();
  t.is(e.code, 'CGROUP_NO_CONTROLLER');
  t.regex(e.message, /controller cpu/);
  t.deepEqual(m.readResources(), {}, 'nothing to read back without controllers');
});

test('v2 + cgroupfs with an overhead cgroup moves the whole VMM process', async (t) => {
  const sub = subtree(t);
  const runtime = sleeper(t);
  const vmm = await multiThreaded(t);
  const planned = planCgroups({
    sandboxId: 's1',
    cgroupsPath: `/${sub}/sandbox`,
    sandboxCgroupOnly: false,
    version: 'v2',
    source: 'test',
  })._unsafeUnwrap();
  const p = { ...planned, overheadPath: `${sub}/kata_overhead/s1` };
  t.is(p.vcpuPlacement, 'process');
  const record = (await createSandboxCgroups(p, host, runtime.pid))._unsafeUnwrap();
  t.deepEqual(readIds(`${UNIFIED}/${sub}/kata_overhead/s1/cgroup.procs`), [runtime.pid]);
  (await placeVmm(record, host, { pid: vmm.pid, vcpuTids: vmm.workerTids }))._unsafeUnwrap();
  t.deepEqual(readIds(`${UNIFIED}/${sub}/sandbox/cgroup.procs`), [vmm.pid]);
  const inside = readIds(`${UNIFIED}/${sub}/sandbox/cgroup.threads`);
  t.true(
    vmm.workerTids.every((tid) => inside.includes(tid)) && inside.includes(vmm.pid),
    'every thread moved with the process',
  );
  // Each cgroup's create says which parents it made: the subtree, then kata_overhead below it.
  t.deepEqual(record.sandbox.driver === 'cgroupfs' ? record.sandbox.createdParents : null, [
    `${UNIFIED}/${sub}`,
  ]);
  t.deepEqual(record.overhead?.driver === 'cgroupfs' ? record.overhead.createdParents : null, [
    `${UNIFIED}/${sub}/kata_overhead`,
  ]);
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap();
  t.false(existsSync(`${UNIFIED}/${sub}/sandbox`));
  t.false(existsSync(`${UNIFIED}/${sub}/kata_overhead/s1`));
  t.false(existsSync(`${UNIFIED}/${sub}`), 'the parents made are gone, the shared one last');
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap();
});
