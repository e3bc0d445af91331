// SystemdManager against a real systemd 252: the suite starts a private systemd as PID 1 of its
// own namespaces (__test__/harness/private-systemd.ts, peers.md), drives scopes through its
// system bus with namespace pids, reads the scopes' cgroup files from the host (they live in
// the harness's kata-ts-test-<random> subtree), and tears it all down.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { call } from '../../ts/native.js';
import {
  createSandboxCgroups,
  deleteSandboxCgroups,
  placeVmm,
  readCgroupResources,
  updateSandboxCpuset,
  type CgroupHost,
  type CgroupRecord,
} from '../../ts/apply/cgroups.js';
import { planCgroups } from '../../ts/plan/cgroups.js';
import { hierarchies, readIds } from '../harness/cgroup-subtree.js';
import { startPrivateSystemd, type PrivateSystemd } from '../harness/private-systemd.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root());

let sd: PrivateSystemd | undefined;
const ROOT = '/sys/fs/cgroup';

test.before(async () => {
  sd = await startPrivateSystemd();
});

test.after.always(async () => {
  await sd?.stop();
});

function systemd(): PrivateSystemd {
  if (!sd) throw new Error('private systemd not started');
  return sd;
}

function host(): CgroupHost {
  const s = systemd();
  return {
    root: ROOT,
    systemd: { busAddress: s.busAddress, cgroupBase: s.subtree, pidNamespace: true },
  };
}

const scopeDir = (ctrl: string, slicePath: string, unit: string) =>
  `${ROOT}/${ctrl}/${systemd().subtree}/${slicePath}/${unit}`;

function plan(cgroupsPath: string, sandboxCgroupOnly: boolean) {
  return planCgroups({
    sandboxId: 's1',
    cgroupsPath,
    sandboxCgroupOnly,
    version: 'v1',
    source: 'test',
  })._unsafeUnwrap();
}

async function unitState(unit: string): Promise<string> {
  try {
    return (await systemd().exec(['systemctl', 'is-active', unit])).stdout.trim();
  } catch (e) {
    return String((e as { stdout?: string }).stdout ?? '').trim();
  }
}

test.serial(
  'a sandbox scope holds the runtime and its limits land in the v1 controller files',
  async (t) => {
    const runtime = await systemd().spawnInside(['sleep', '600']);
    t.teardown(() => runtime.kill());
    const p = plan('kata-test.slice:kata:sbx1', true);
    t.deepEqual(p.systemd, {
      slice: 'kata-test.slice',
      unit: 'kata-sbx1.scope',
      slicePath: 'kata.slice/kata-test.slice',
    });
    const record = (await createSandboxCgroups(p, host(), runtime.pid))._unsafeUnwrap();
    t.teardown(async () => void (await deleteSandboxCgroups(record, host())));
    t.is(await unitState('kata-sbx1.scope'), 'active');
    const dir = (ctrl: string) => scopeDir(ctrl, 'kata.slice/kata-test.slice', 'kata-sbx1.scope');
    t.deepEqual(readIds(`${dir('systemd')}/cgroup.procs`), [runtime.pid]);

    const m = call((n) =>
      n.CgroupManager.systemd({
        version: 'v1',
        slice: 'kata-test.slice',
        unit: 'kata-sbx1.scope',
        busAddress: systemd().busAddress,
        cgroupBase: systemd().subtree,
        pidNamespace: true,
      }),
    )._unsafeUnwrap();
    await m.setResourcesAsync({
      quotaUs: 20_000,
      periodUs: 100_000,
      memoryBytes: 64 * 1024 * 1024,
      pidsMax: 50,
    });
    t.is(readFileSync(`${dir('cpu')}/cpu.cfs_quota_us`, 'utf8').trim(), '20000');
    t.is(readFileSync(`${dir('cpu')}/cpu.cfs_period_us`, 'utf8').trim(), '100000');
    t.is(
      readFileSync(`${dir('memory')}/memory.limit_in_bytes`, 'utf8').trim(),
      String(64 * 1024 * 1024),
    );
    t.is(readFileSync(`${dir('pids')}/pids.max`, 'utf8').trim(), '50');
    // An update goes through SetUnitProperties.
    await m.setResourcesAsync({ quotaUs: 50_000, periodUs: 100_000, shares: 512 });
    t.is(readFileSync(`${dir('cpu')}/cpu.cfs_quota_us`, 'utf8').trim(), '50000');
    t.is(readFileSync(`${dir('cpu')}/cpu.shares`, 'utf8').trim(), '512');
    // v1 cpuset is not systemd's: kept through cgroupfs next to the scope.
    (await updateSandboxCpuset(record, host(), { cpus: '0', mems: '0' }))._unsafeUnwrap();
    t.is(readFileSync(`${dir('cpuset')}/cpuset.cpus`, 'utf8').trim(), '0');
    t.deepEqual(readIds(`${dir('cpuset')}/cgroup.procs`), [runtime.pid]);
    const back = (await readCgroupResources(record.sandbox, 'v1', host()))._unsafeUnwrap();
    t.like(back, {
      quotaUs: 50_000,
      periodUs: 100_000,
      shares: 512,
      memoryBytes: 64 * 1024 * 1024,
      pidsMax: 50,
      cpus: '0',
    });

    // Delete uses the driver recorded at create, from the persisted copy.
    const persisted = JSON.parse(JSON.stringify(record)) as CgroupRecord;
    t.is(persisted.driver, 'systemd');
    (await deleteSandboxCgroups(persisted, host()))._unsafeUnwrap();
    t.not(await unitState('kata-sbx1.scope'), 'active');
    t.false(existsSync(dir('cpu')));
    t.false(existsSync(dir('cpuset')));
    (await deleteSandboxCgroups(record, host()))._unsafeUnwrap(); // idempotent: StopUnit of an unknown unit
  },
);

test.serial(
  'with an overhead scope the runtime stays out and the whole VMM process is placed',
  async (t) => {
    const runtime = await systemd().spawnInside(['sleep', '600']);
    t.teardown(() => runtime.kill());
    const vmm = await systemd().spawnInside(['sleep', '601']);
    t.teardown(() => vmm.kill());
    const p = plan('kata-test.slice:kata:sbx2', false);
    t.is(p.vcpuPlacement, 'process', 'v1 + systemd moves the whole process');
    t.deepEqual(p.overheadSystemd, {
      slice: 'kata-overhead.slice',
      unit: 'runtime-rs-s1.scope',
      slicePath: 'kata.slice/kata-overhead.slice',
    });
    const record = (await createSandboxCgroups(p, host(), runtime.pid))._unsafeUnwrap();
    t.teardown(async () => void (await deleteSandboxCgroups(record, host())));
    t.deepEqual(
      readIds(
        `${scopeDir('cpu', 'kata.slice/kata-overhead.slice', 'runtime-rs-s1.scope')}/cgroup.procs`,
      ),
      [runtime.pid],
    );
    t.is(await unitState('kata-sbx2.scope'), 'inactive', 'a scope starts with its first process');
    (await placeVmm(record, host(), { pid: vmm.pid, vcpuTids: [vmm.pid] }))._unsafeUnwrap();
    t.deepEqual(
      readIds(`${scopeDir('cpu', 'kata.slice/kata-test.slice', 'kata-sbx2.scope')}/cgroup.procs`),
      [vmm.pid],
    );
    (await deleteSandboxCgroups(record, host()))._unsafeUnwrap();
    t.not(await unitState('kata-sbx2.scope'), 'active');
    t.not(await unitState('runtime-rs-s1.scope'), 'active');
  },
);

test.serial('adding a thread through systemd attaches its whole process', async (t) => {
  const first = await systemd().spawnInside(['sleep', '600']);
  t.teardown(() => first.kill());
  const vmm = await systemd().spawnInside([
    process.execPath,
    '-e',
    "new (require('node:worker_threads').Worker)('setInterval(()=>{},1000)',{eval:true});setInterval(()=>{},1000)",
  ]);
  t.teardown(() => vmm.kill());
  const m = call((n) =>
    n.CgroupManager.systemd({
      version: 'v1',
      slice: 'kata-test.slice',
      unit: 'kata-sbx3.scope',
      busAddress: systemd().busAddress,
      cgroupBase: systemd().subtree,
      pidNamespace: true,
    }),
  )._unsafeUnwrap();
  t.teardown(() => m.deleteAsync());
  await m.createAsync([first.pid]);
  let tids: number[] = [];
  for (let i = 0; i < 100 && tids.length < 2; i++) {
    tids = readdirSync(`/proc/${vmm.pid}/task`)
      .map(Number)
      .filter((x) => x !== vmm.pid);
    await new Promise((r) => setTimeout(r, 20));
  }
  await m.addThreadAsync(tids[tids.length - 1]!);
  t.deepEqual(
    (await m.procs()).sort((a, b) => a - b),
    [first.pid, vmm.pid].sort((a, b) => a - b),
  );
  await m.deleteAsync();
});

test.serial('an unreachable bus is a CGROUP_DBUS error naming the address', async (t) => {
  const m = call((n) =>
    n.CgroupManager.systemd({
      version: 'v1',
      slice: 'kata-test.slice',
      unit: 'x.scope',
      busAddress: 'unix:path=/nonexistent/bus',
    }),
  )._unsafeUnwrap();
  const e = await m.deleteAsync().then(
    () => null,
    (err: unknown) => err as Error,
  );
  t.truthy(e);
  t.regex(e!.message, /^CGROUP_DBUS: .*\/nonexistent\/bus/);
});

test.serial('systemd never touched the host cgroup roots', (t) => {
  for (const h of hierarchies()) {
    const entries = readdirSync(h);
    t.false(entries.includes('system.slice'), h);
    t.false(entries.includes('init.scope'), h);
  }
  t.true(
    existsSync(`${ROOT}/systemd/${systemd().subtree}/init.scope`),
    'systemd made its cgroups in the subtree instead',
  );
});
