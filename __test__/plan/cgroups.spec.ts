import test from 'ava';
import {
  expandSlice,
  isSystemdCgroup,
  overheadPath,
  parseSystemdPath,
  planCgroups,
  unitName,
  type CgroupInput,
  type CgroupPlan,
} from '../../ts/plan/cgroups.js';

// vectors.md §6.1
const overheadRows: [boolean, string, string][] = [
  [true, 'kata_sandboxed_pod', 'kata-overhead.slice:runtime-rs:kata_sandboxed_pod'],
  [false, 'kata_sandboxed_pod', 'kata_overhead/kata_sandboxed_pod'],
  [false, '/abc', 'kata_overhead/abc'],
];
for (const [systemd, name, want] of overheadRows) {
  test(`overhead path (systemd=${systemd}, ${name}) is ${want}`, (t) =>
    t.is(overheadPath(systemd, name), want));
}

const systemdRows: [string, boolean][] = [
  ['system.slice:docker:6b4c', true],
  ['kubepods-burstable-pod1.slice:cri-containerd:abc', true],
  [':cri-containerd:abc', false],
  ['foo:bar:baz', false],
  ['a.slice:b', false],
  ['/kubepods/burstable/pod1/abc', false],
];
for (const [path, want] of systemdRows) {
  test(`is_systemd_cgroup(${JSON.stringify(path)}) is ${want}`, (t) =>
    t.is(isSystemdCgroup(path), want));
}

const unitRows: [string, string, string][] = [
  ['test', 'unit', 'test-unit.scope'],
  ['test', 'unit.slice', 'unit.slice'],
  ['', 'unit', 'unit.scope'],
  ['', 'unit.slice', 'unit.slice'],
  ['prefix', 'unit', 'prefix-unit.scope'],
];
for (const [prefix, name, want] of unitRows) {
  test(`unit name (${JSON.stringify(prefix)}, ${name}) is ${want}`, (t) =>
    t.is(unitName(prefix, name), want));
}

const sliceRows: [string, string | null][] = [
  ['test.slice', 'test.slice'],
  ['test-1.slice', 'test.slice/test-1.slice'],
  ['test-1-test-2.slice', 'test.slice/test-1.slice/test-1-test.slice/test-1-test-2.slice'],
  ['slice-slice.slice', 'slice.slice/slice-slice.slice'],
  ['-.slice', ''],
  ['invalid/slice', null],
  ['invalid-slice', null],
  ['a--b.slice', null],
];
for (const [slice, want] of sliceRows) {
  test(`expand_slice(${JSON.stringify(slice)}) ${want === null ? 'is an error' : `is ${JSON.stringify(want)}`}`, (t) => {
    const r = expandSlice(slice);
    if (want === null) t.true(r.isErr());
    else t.is(r._unsafeUnwrap(), want);
  });
}

test('an empty systemd slice means system.slice', (t) => {
  t.deepEqual(parseSystemdPath(':prefix:name')._unsafeUnwrap(), {
    slice: 'system.slice',
    unit: 'prefix-name.scope',
    slicePath: 'system.slice',
  });
});

const base: CgroupInput = {
  sandboxId: 's1',
  cgroupsPath: undefined,
  sandboxCgroupOnly: true,
  version: 'v1',
  source: 'bundle/config.json',
};

test('no spec path: cgroupfs kata_sandboxed_pod/<sid>', (t) => {
  const p = planCgroups(base)._unsafeUnwrap();
  t.is(p.driver, 'cgroupfs');
  t.is(p.path, 'kata_sandboxed_pod/s1');
  t.is(p.overheadPath, null);
  t.is(p.vcpuPlacement, 'none');
});

test('a cgroupfs spec path has its leading slash trimmed', (t) => {
  t.is(
    planCgroups({ ...base, cgroupsPath: '/kubepods/burstable/pod1/abc' })._unsafeUnwrap().path,
    'kubepods/burstable/pod1/abc',
  );
});

test('a systemd spec path selects systemd with slice, unit and slice path', (t) => {
  const p = planCgroups({
    ...base,
    cgroupsPath: 'kubepods-burstable-pod1.slice:cri-containerd:abc',
  })._unsafeUnwrap();
  t.is(p.driver, 'systemd');
  t.is(p.path, 'kubepods-burstable-pod1.slice:cri-containerd:abc');
  t.deepEqual(p.systemd, {
    slice: 'kubepods-burstable-pod1.slice',
    unit: 'cri-containerd-abc.scope',
    slicePath: 'kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice',
  });
});

// vectors.md §6.2 placement matrix (sandbox_cgroup_only = false).
const placementRows: [
  CgroupInput['version'],
  string | undefined,
  CgroupPlan['vcpuPlacement'],
  string,
][] = [
  ['v1', undefined, 'threads', 'kata_overhead/s1'],
  ['v1', 'system.slice:kata:s1', 'process', 'kata-overhead.slice:runtime-rs:s1'],
  ['v2', undefined, 'process', 'kata_overhead/s1'],
  ['v2', 'system.slice:kata:s1', 'process', 'kata-overhead.slice:runtime-rs:s1'],
];
for (const [version, path, placement, overhead] of placementRows) {
  const driver = path ? 'systemd' : 'cgroupfs';
  test(`${version} + ${driver} with an overhead cgroup moves vCPU ${placement}`, (t) => {
    const p = planCgroups({
      ...base,
      version,
      cgroupsPath: path,
      sandboxCgroupOnly: false,
    })._unsafeUnwrap();
    t.is(p.vcpuPlacement, placement);
    t.is(p.overheadPath, overhead);
  });
}

test('sandbox_cgroup_only: no overhead cgroup, nothing to move', (t) => {
  const p = planCgroups({ ...base, version: 'v2', sandboxCgroupOnly: true })._unsafeUnwrap();
  t.is(p.overheadPath, null);
  t.is(p.vcpuPlacement, 'none');
});

for (const bad of ['/a/../../etc', '/', 'a/./b']) {
  test(`cgroupfs path ${JSON.stringify(bad)} is refused naming linux.cgroupsPath`, (t) => {
    const e = planCgroups({ ...base, cgroupsPath: bad })._unsafeUnwrapErr();
    t.is(e.problems[0]!.field, 'linux.cgroupsPath');
    t.is(e.problems[0]!.source, 'bundle/config.json');
  });
}
