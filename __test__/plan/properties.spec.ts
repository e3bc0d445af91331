// Property tests over the planner pieces: results match an independent exact computation, guest
// paths never leave their root, cgroup paths never climb out of the hierarchy.
import test from 'ava';
import fc from 'fast-check';
import { planCgroups } from '../../ts/plan/cgroups.js';
import { planSizing } from '../../ts/plan/sizing.js';
import { sandboxVcpusTwin } from '../../ts/plan/vcpu-twin.js';
import { guestConst, isWithin, joinGuest } from '../../ts/paths.js';

const limits = fc.record(
  {
    quotaUs: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 40_000_000 })),
    periodUs: fc.integer({ min: 0, max: 1_000_000 }),
    cpus: fc.constantFrom('0-3', '1', '2-7', '0,4'),
  },
  { requiredKeys: [] },
);

test('vCPUs after each add equal ceil of the exact sum, never shrink, and stay within [1, max]', (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom('0.25', '0.5', '1', '1.5', '2'),
      fc.array(limits, { maxLength: 25 }),
      fc.integer({ min: 1, max: 64 }),
      (def, ls, max) => {
        const containers = ls.map((l, i) => ({ id: `c${i}`, limits: l }));
        const r = planSizing({
          defaultVcpus: def,
          overheadVcpus: '0',
          defaultMaxVcpus: max,
          defaultMemoryMiB: 2048,
          overheadMemoryMiB: 0,
          defaultMaxMemoryMiB: 0,
          staticSandboxResourceMgmt: false,
          hostCpus: 64,
          hostMemoryMiB: 65536,
          staticRequest: null,
          containers,
        })._unsafeUnwrap();
        let previous = r.vcpus.boot;
        return r.containers.every((c, i) => {
          const exact = sandboxVcpusTwin(def, ls.slice(0, i + 1))._unsafeUnwrap();
          const want = Math.min(Math.max(previous, exact.ceil, 1), max);
          const okay = c.vcpusAfter === want && c.vcpusAfter >= previous && c.vcpusAfter <= max;
          previous = c.vcpusAfter;
          return okay;
        });
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('joinGuest never yields a path outside its root, whatever the segments', (t) => {
  const root = guestConst('/run/kata-containers/shared/containers');
  const segment = fc.oneof(
    fc.string(),
    fc.constantFrom('..', '.', '', 'a/../..', '/etc', 'x\0y', '..data', 'ok-name'),
  );
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), (segments) => {
      const r = joinGuest(root, ...segments);
      return (
        r.isErr() ||
        (isWithin(root, r.value) && r.value !== root && !r.value.split('/').includes('..'))
      );
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test('a cgroupfs plan path never climbs out of the hierarchy or hits its root', (t) => {
  const part = fc.oneof(
    fc.constantFrom('..', '.', '', 'kubepods', 'pod1', 'a:b'),
    fc.string({ maxLength: 8 }),
  );
  fc.assert(
    fc.property(fc.array(part, { maxLength: 6 }), fc.boolean(), (parts, leadingSlash) => {
      const path = `${leadingSlash ? '/' : ''}${parts.join('/')}`;
      const r = planCgroups({
        sandboxId: 's1',
        cgroupsPath: path,
        sandboxCgroupOnly: true,
        version: 'v1',
        source: 'spec',
      });
      if (r.isErr()) return r.error.problems.every((p) => p.field === 'linux.cgroupsPath');
      if (r.value.driver === 'systemd') return true;
      const segs = r.value.path.split('/');
      return (
        !r.value.path.startsWith('/') &&
        segs.some((s) => s !== '') &&
        !segs.includes('..') &&
        !segs.includes('.') &&
        !r.value.path.includes('\0')
      );
    }),
    { numRuns: 2000 },
  );
  t.pass();
});
