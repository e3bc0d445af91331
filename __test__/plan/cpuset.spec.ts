import test from 'ava';
import { collectSandboxCpuset, formatCpuset, planVcpuPinning } from '../../ts/plan/cpuset.js';

const sets = (...values: (string | undefined)[]) =>
  values.map((value, i) => ({
    source: `c${i + 1}/config.json`,
    field: 'linux.resources.cpu.cpus',
    value,
  }));

// vectors.md §6.3 collect_sandbox_cpuset
const rows: [string, (string | undefined)[], number[]][] = [
  ['no containers', [], []],
  ['one range', ['0-3'], [0, 1, 2, 3]],
  ['a list', ['0,2,4'], [0, 2, 4]],
  ['two disjoint', ['0,1', '2,3'], [0, 1, 2, 3]],
  ['two overlapping', ['0-2', '1-3'], [0, 1, 2, 3]],
  ['three mixed', ['0', '4-6', '2'], [0, 2, 4, 5, 6]],
  ['resources without cpus', [undefined, undefined], []],
];
for (const [title, input, want] of rows) {
  test(`sandbox cpuset: ${title}`, (t) =>
    t.deepEqual(collectSandboxCpuset(sets(...input))._unsafeUnwrap(), want));
}

test('the cpuset written to the sandbox cgroup is canonical', (t) => {
  t.is(formatCpuset([0, 1, 2, 3, 2, 4, 5]), '0-5');
  t.is(formatCpuset([0, 2, 4]), '0,2,4');
  t.is(formatCpuset([7]), '7');
  t.is(formatCpuset([]), '');
});

test('a bad container cpuset is an error naming the container and field', (t) => {
  const e = collectSandboxCpuset(sets('0-3', '5-2'))._unsafeUnwrapErr();
  t.like(e.problems[0], {
    source: 'c2/config.json',
    field: 'linux.resources.cpu.cpus',
    value: '5-2',
  });
});

test('vCPUs are pinned 1:1 only when thread and CPU counts match', (t) => {
  t.deepEqual(planVcpuPinning(3, [0, 2, 4]), [0, 2, 4]);
  t.is(planVcpuPinning(2, [0, 2, 4]), null);
  t.is(planVcpuPinning(0, []), null);
});
