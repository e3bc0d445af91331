// SystemdManager on a unified (v2) layout: a private systemd that sees only the cgroup2
// hierarchy (__test__/harness/private-systemd.ts, `unified`). This host's cgroup2 hierarchy has
// no cpu, cpuset, memory or pids controller (only hugetlb), so systemd accepts the limit
// properties but has no files to write them to; what is tested is the scope's life: created with
// the process in its cgroup.procs, another process attached, limits accepted, stopped, gone.
import { existsSync, readFileSync } from 'node:fs';
import { call } from '../../ts/native.js';
import {
  createSandboxCgroups,
  deleteSandboxCgroups,
  placeVmm,
  type CgroupHost,
} from '../../ts/apply/cgroups.js';
import { planCgroups } from '../../ts/plan/cgroups.js';
import { readIds } from '../harness/cgroup-subtree.js';
import { startPrivateSystemd, type PrivateSystemd } from '../harness/private-systemd.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root());

let sd: PrivateSystemd | undefined;
const UNIFIED = '/sys/fs/cgroup/unified';

test.before(async () => {
  sd = await startPrivateSystemd('unified');
});

test.after.always(async () => {
  await sd?.stop();
});

function systemd(): PrivateSystemd {
  if (!sd) throw new Error('private systemd not started');
  return sd;
}

const host = (): CgroupHost => ({
  root: UNIFIED,
  systemd: { busAddress: systemd().busAddress, cgroupBase: systemd().subtree, pidNamespace: true },
});

test.serial('systemd runs in unified mode inside the test subtree', async (t) => {
  t.is(
    readFileSync(`${UNIFIED}/${systemd().subtree}/init.scope/cgroup.type`, 'utf8').trim(),
    'domain',
  );
  const { stdout } = await systemd().exec(['stat', '-f', '-c', '%T', '/sys/fs/cgroup']);
  t.is(stdout.trim(), 'cgroup2fs');
});

test.serial(
  'v2 + systemd: the scope holds the runtime, the VMM process joins, delete stops it',
  async (t) => {
    const runtime = await systemd().spawnInside(['sleep', '600']);
    t.teardown(() => runtime.kill());
    const vmm = await systemd().spawnInside(['sleep', '601']);
    t.teardown(() => vmm.kill());
    const p = planCgroups({
      sandboxId: 's1',
      cgroupsPath: 'kata-test.slice:kata:v2',
      sandboxCgroupOnly: true,
      version: 'v2',
      source: 'test',
    })._unsafeUnwrap();
    const record = (await createSandboxCgroups(p, host(), runtime.pid))._unsafeUnwrap();
    t.teardown(async () => void (await deleteSandboxCgroups(record, host())));
    const dir = `${UNIFIED}/${systemd().subtree}/kata.slice/kata-test.slice/kata-v2.scope`;
    t.deepEqual(readIds(`${dir}/cgroup.procs`), [runtime.pid]);
    // placement 'process' is what v2 always does; here used directly on the scope.
    (
      await placeVmm({ ...record, vcpuPlacement: 'process' }, host(), {
        pid: vmm.pid,
        vcpuTids: [],
      })
    )._unsafeUnwrap();
    t.deepEqual(
      readIds(`${dir}/cgroup.procs`).sort((a, b) => a - b),
      [runtime.pid, vmm.pid].sort((a, b) => a - b),
    );
    const m = call((n) =>
      n.CgroupManager.systemd({
        version: 'v2',
        cgroupRoot: UNIFIED,
        slice: 'kata-test.slice',
        unit: 'kata-v2.scope',
        busAddress: systemd().busAddress,
        cgroupBase: systemd().subtree,
        pidNamespace: true,
      }),
    )._unsafeUnwrap();
    // CPUQuotaPerSecUSec, CPUWeight, AllowedCPUs, MemoryMax, TasksMax: accepted by systemd.
    await t.notThrowsAsync(
      m.setResourcesAsync({
        quotaUs: 20_000,
        periodUs: 100_000,
        shares: 1024,
        cpus: '0',
        mems: '0',
        memoryBytes: 64 << 20,
        pidsMax: 20,
      }),
    );
    (await deleteSandboxCgroups(record, host()))._unsafeUnwrap();
    t.false(existsSync(dir));
    (await deleteSandboxCgroups(record, host()))._unsafeUnwrap();
  },
);
