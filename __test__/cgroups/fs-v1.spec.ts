// Real cgroup v1 on this host (controllers at /sys/fs/cgroup/<ctrl>), through the binding and the
// apply layer. Every test works below its own kata-ts-test-<random> subtree, removed in teardown.
import type { ExecutionContext } from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { call } from '../../ts/native.js';
import {
  createSandboxCgroups,
  deleteSandboxCgroups,
  placeVmm,
  updateSandboxCpuset,
  type CgroupHost,
  type CgroupRecord,
} from '../../ts/apply/cgroups.js';
import { planCgroups, type CgroupPlan } from '../../ts/plan/cgroups.js';
import { readIds, removeSubtree, uniqueSubtree } from '../harness/cgroup-subtree.js';
import { multiThreaded, sleeper, threadsOf } from './processes.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root());

const ROOT = '/sys/fs/cgroup';
const host: CgroupHost = { root: ROOT, controllers: ['cpu', 'cpuset', 'memory', 'pids'] };

function subtree(t: ExecutionContext): string {
  const name = uniqueSubtree();
  t.teardown(() => removeSubtree(name));
  return name;
}

const file = (ctrl: string, path: string, name: string) =>
  readFileSync(`${ROOT}/${ctrl}/${path}/${name}`, 'utf8').trim();

function plan(sub: string, sandboxCgroupOnly: boolean): CgroupPlan {
  const p = planCgroups({
    sandboxId: 's1',
    cgroupsPath: `/${sub}/sandbox`,
    sandboxCgroupOnly,
    version: 'v1',
    source: 'test',
  })._unsafeUnwrap();
  // The overhead cgroup goes below the test subtree too, so teardown removes it.
  return p.overheadPath === null ? p : { ...p, overheadPath: `${sub}/kata_overhead/s1` };
}

test('the host layout is detected as hybrid (v1 controllers plus cgroup2 at unified)', (t) => {
  t.is(call((n) => n.detectCgroupLayout())._unsafeUnwrap(), 'hybrid');
});

test('v1 limits are written to the controller files and read back', (t) => {
  const sub = subtree(t);
  const m = call((n) =>
    n.CgroupManager.cgroupfs({
      version: 'v1',
      path: `${sub}/limits`,
      controllers: ['cpu', 'cpuset', 'memory', 'pids'],
    }),
  )._unsafeUnwrap();
  m.create([]);
  const limits = {
    quotaUs: 50_000,
    periodUs: 200_000,
    shares: 512,
    cpus: '0',
    mems: '0',
    memoryBytes: 128 * 1024 * 1024,
    pidsMax: 64,
  };
  m.setResources(limits);
  const path = `${sub}/limits`;
  t.is(file('cpu', path, 'cpu.cfs_quota_us'), '50000');
  t.is(file('cpu', path, 'cpu.cfs_period_us'), '200000');
  t.is(file('cpu', path, 'cpu.shares'), '512');
  t.is(file('cpuset', path, 'cpuset.cpus'), '0');
  t.is(file('memory', path, 'memory.limit_in_bytes'), String(128 * 1024 * 1024));
  t.is(file('pids', path, 'pids.max'), '64');
  t.deepEqual(m.readResources(), limits);
  m.setResources({ quotaUs: -1, memoryBytes: -1, pidsMax: -1 });
  t.is(file('cpu', path, 'cpu.cfs_quota_us'), '-1');
  t.is(file('pids', path, 'pids.max'), 'max');
  t.like(m.readResources(), { quotaUs: -1, memoryBytes: -1, pidsMax: -1 });
  m.delete();
  t.false(existsSync(`${ROOT}/cpu/${path}`));
});

test('a new cpuset cgroup inherits cpus and mems from its parent at every level', (t) => {
  const sub = subtree(t);
  const m = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v1', path: `${sub}/a/b`, controllers: ['cpuset'] }),
  )._unsafeUnwrap();
  const p = sleeper(t);
  m.create([p.pid]); // would fail with ENOSPC if cpus/mems were still empty
  t.is(
    file('cpuset', `${sub}/a/b`, 'cpuset.cpus'),
    readFileSync(`${ROOT}/cpuset/cpuset.cpus`, 'utf8').trim(),
  );
  t.is(
    file('cpuset', `${sub}/a`, 'cpuset.mems'),
    readFileSync(`${ROOT}/cpuset/cpuset.mems`, 'utf8').trim(),
  );
  t.deepEqual(m.procs(), [p.pid]);
});

test('sandbox_cgroup_only: the runtime process is found in cgroup.procs; delete moves it to the root', async (t) => {
  const sub = subtree(t);
  const runtime = sleeper(t);
  const record = (await createSandboxCgroups(plan(sub, true), host, runtime.pid))._unsafeUnwrap();
  // The record is persisted with the sandbox state; delete works from the stored copy.
  const persisted = JSON.parse(JSON.stringify(record)) as CgroupRecord;
  // The subtree did not exist: create made it in each hierarchy, and says so.
  const createdParents = host.controllers!.map((c) => `${ROOT}/${c}/${sub}`);
  t.deepEqual(persisted, {
    driver: 'cgroupfs',
    version: 'v1',
    sandbox: { driver: 'cgroupfs', path: `${sub}/sandbox`, createdParents },
    overhead: null,
    vcpuPlacement: 'none',
  });
  for (const ctrl of host.controllers!)
    t.deepEqual(readIds(`${ROOT}/${ctrl}/${sub}/sandbox/cgroup.procs`), [runtime.pid], ctrl);
  (await deleteSandboxCgroups(persisted, host))._unsafeUnwrap();
  t.false(existsSync(`${ROOT}/cpu/${sub}/sandbox`));
  t.deepEqual(
    createdParents.filter((d) => existsSync(d)),
    [],
    'the parents it made are gone too',
  );
  t.true(readIds(`${ROOT}/cpu/cgroup.procs`).includes(runtime.pid));
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap(); // idempotent
});

test('with an overhead cgroup on v1 + cgroupfs, vCPU threads move one by one', async (t) => {
  const sub = subtree(t);
  const runtime = sleeper(t);
  const vmm = await multiThreaded(t);
  const p = plan(sub, false);
  t.is(p.vcpuPlacement, 'threads');
  const record = (await createSandboxCgroups(p, host, runtime.pid))._unsafeUnwrap();
  t.deepEqual(readIds(`${ROOT}/cpu/${sub}/kata_overhead/s1/cgroup.procs`), [runtime.pid]);
  t.deepEqual(readIds(`${ROOT}/cpu/${sub}/sandbox/cgroup.procs`), []);
  (await placeVmm(record, host, { pid: vmm.pid, vcpuTids: vmm.workerTids }))._unsafeUnwrap();
  t.deepEqual(
    readIds(`${ROOT}/cpu/${sub}/sandbox/tasks`).sort(),
    [...vmm.workerTids].sort(),
    'exactly the vCPU threads',
  );
  const others = threadsOf(vmm.pid).filter((tid) => !vmm.workerTids.includes(tid));
  t.true(others.length > 0);
  for (const tid of others)
    t.false(readFileSync(`/proc/${vmm.pid}/task/${tid}/cgroup`, 'utf8').includes(`${sub}/sandbox`));
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap();
  t.false(existsSync(`${ROOT}/cpu/${sub}/sandbox`));
  t.false(existsSync(`${ROOT}/cpu/${sub}/kata_overhead/s1`));
});

test('placing vCPU threads when there are none is an error', async (t) => {
  const sub = subtree(t);
  const runtime = sleeper(t);
  const record = (await createSandboxCgroups(plan(sub, false), host, runtime.pid))._unsafeUnwrap();
  const e = (await placeVmm(record, host, { pid: runtime.pid, vcpuTids: [] }))._unsafeUnwrapErr();
  t.is(e.code, 'CGROUP_NO_VCPUS');
  t.regex(e.message, /hypervisor cannot be moved to sandbox cgroup/);
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap();
});

test('the sandbox cpuset follows the containers as they come and go', async (t) => {
  const sub = subtree(t);
  const runtime = sleeper(t);
  const record = (await createSandboxCgroups(plan(sub, true), host, runtime.pid))._unsafeUnwrap();
  const all = readFileSync(`${ROOT}/cpuset/cpuset.cpus`, 'utf8').trim();
  t.is(file('cpuset', `${sub}/sandbox`, 'cpuset.cpus'), all, 'inherited at create');
  (await updateSandboxCpuset(record, host, { cpus: '0', mems: '0' }))._unsafeUnwrap();
  t.is(file('cpuset', `${sub}/sandbox`, 'cpuset.cpus'), '0');
  (await updateSandboxCpuset(record, host, { cpus: all }))._unsafeUnwrap();
  t.is(file('cpuset', `${sub}/sandbox`, 'cpuset.cpus'), all);
  (await updateSandboxCpuset(record, host, { cpus: '' }))._unsafeUnwrap();
  t.is(
    file('cpuset', `${sub}/sandbox`, 'cpuset.cpus'),
    all,
    'an empty union leaves the cpuset alone',
  );
  (await deleteSandboxCgroups(record, host))._unsafeUnwrap();
});

test('errors carry a code and name the file or path', (t) => {
  const sub = subtree(t);
  const bad = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v1', path: '../etc' }),
  )._unsafeUnwrapErr();
  t.is(bad.code, 'CGROUP_INVALID');
  t.regex(bad.message, /\.\.\/etc/);
  const m = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v1', path: `${sub}/x`, controllers: ['cpu'] }),
  )._unsafeUnwrap();
  m.create([]);
  const noMem = call(() => m.setResources({ memoryBytes: 1 << 20 }))._unsafeUnwrapErr();
  t.is(noMem.code, 'CGROUP_NO_CONTROLLER');
  t.regex(noMem.message, /memory/);
  const gone = call(() => m.addProcess(2 ** 22 + 1))._unsafeUnwrapErr(); // above pid_max: no such process
  t.is(gone.code, 'CGROUP_IO');
  t.true(gone.message.includes(`${ROOT}/cpu/${sub}/x/cgroup.procs`), gone.message);
  const version = call((n) =>
    n.CgroupManager.cgroupfs({ version: 'v3', path: 'x' }),
  )._unsafeUnwrapErr();
  t.is(version.code, 'CGROUP_INVALID');
});
