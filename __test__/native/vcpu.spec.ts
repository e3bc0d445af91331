import test from 'ava';
import fc from 'fast-check';
import { call } from '../../ts/native.js';
import { sandboxVcpusTwin } from '../../ts/plan/vcpu-twin.js';

type Row = {
  title: string;
  def: string;
  containers: { quotaUs?: number; periodUs?: number; cpus?: string }[];
  exact: string;
  ceil: number;
};
const q = (quotaUs: number, periodUs: number) => ({ quotaUs, periodUs });
const M = 1_000_000;

// vectors.md §5.1, with exact answers where the reference used floats.
const rows: Row[] = [
  {
    title: 'ten 0.1-CPU containers need exactly 1 vCPU',
    def: '0',
    containers: Array.from({ length: 10 }, () => q(100_000, M)),
    exact: '1/1',
    ceil: 1,
  },
  {
    title: 'big_1: 10 + 32 + 32 + 64 = 138',
    def: '10',
    containers: [q(32 * M, M), q(32 * M, M), q(64 * M, M)],
    exact: '138/1',
    ceil: 138,
  },
  {
    title: 'big_2 keeps the millionths exactly',
    def: '10',
    containers: [q(33 * M, M), q(31 * M, M), q(77_000_011, M)],
    exact: '151000011/1000000',
    ceil: 152,
  },
  {
    title: 'big_3',
    def: '10',
    containers: [q(141_000_008, M)],
    exact: '18875001/125000',
    ceil: 152,
  },
  {
    title: 'big_4',
    def: '10',
    containers: Array.from({ length: 4 }, () => q(17_000_001, M)),
    exact: '19500001/250000',
    ceil: 79,
  },
  {
    title: 'divisible periods a',
    def: '3',
    containers: [q(M, M), q(M, 500_000)],
    exact: '6/1',
    ceil: 6,
  },
  {
    title: 'divisible periods b',
    def: '3',
    containers: [q(3 * M, 1_500_000), q(M, 500_000)],
    exact: '7/1',
    ceil: 7,
  },
  {
    title: 'indivisible periods a',
    def: '1',
    containers: [q(M, M), q(900_000, 300_000)],
    exact: '5/1',
    ceil: 5,
  },
  {
    title: 'indivisible periods b',
    def: '1',
    containers: [q(M, M), q(900_000, 299_999)],
    exact: '1499998/299999',
    ceil: 6,
  },
  {
    title: 'fractional default 0.5 + 0.25',
    def: '0.5',
    containers: [q(250_000, M)],
    exact: '3/4',
    ceil: 1,
  },
  {
    title: 'fractional default 0.5 + 0.5',
    def: '0.5',
    containers: [q(500_000, M)],
    exact: '1/1',
    ceil: 1,
  },
  {
    title: 'fractional default 0.5 + 0.500001',
    def: '0.5',
    containers: [q(500_001, M)],
    exact: '1000001/1000000',
    ceil: 2,
  },
  { title: 'no containers: the default', def: '1.5', containers: [], exact: '3/2', ceil: 2 },
  {
    title: 'cpuset-only containers: size of the union, default not added',
    def: '1',
    containers: [
      { quotaUs: -1, cpus: '0-3' },
      { quotaUs: -1, cpus: '2-5' },
    ],
    exact: '6/1',
    ceil: 6,
  },
  {
    title: 'no quota and no cpuset: at least one vCPU',
    def: '0',
    containers: [{ quotaUs: -1 }],
    exact: '1/1',
    ceil: 1,
  },
  {
    title: 'per-container 10.01 from quota 1001 / period 100',
    def: '0',
    containers: [{ quotaUs: 1001, periodUs: 100, cpus: '1,2,3' }],
    exact: '1001/100',
    ceil: 11,
  },
];

for (const row of rows) {
  test(`native: ${row.title}`, (t) => {
    const r = call((n) => n.calcSandboxVcpus(row.def, row.containers))._unsafeUnwrap();
    t.is(r.exact, row.exact);
    t.is(r.ceil, row.ceil);
  });
  test(`ts twin: ${row.title}`, (t) => {
    const r = sandboxVcpusTwin(row.def, row.containers)._unsafeUnwrap();
    t.is(`${r.numerator}/${r.denominator}`, row.exact);
    t.is(r.ceil, row.ceil);
  });
}

// vectors.md §5.3
test('cpuset parsing accepts the reference cases', (t) => {
  t.deepEqual(call((n) => n.parseCpuset(''))._unsafeUnwrap(), []);
  t.deepEqual(call((n) => n.parseCpuset('1,2,3'))._unsafeUnwrap(), [1, 2, 3]);
  t.deepEqual(call((n) => n.parseCpuset('1-2,3'))._unsafeUnwrap(), [1, 2, 3]);
  t.deepEqual(
    call((n) => n.parseCpuset('1,3,4,6,7,8'))._unsafeUnwrap(),
    call((n) => n.parseCpuset('1,3-4,6-8'))._unsafeUnwrap(),
  );
});

for (const bad of [
  '1-2-3,3',
  '1-2,,3',
  '1-2.5,3',
  '1-1',
  '2-1',
  '0,,1',
  '-1',
  '1-',
  '-1--2',
  '999999999999999999999999999999999999999999999',
]) {
  test(`cpuset ${JSON.stringify(bad)} is rejected with VCPU_INVALID_CPUSET`, (t) => {
    const e = call((n) => n.parseCpuset(bad))._unsafeUnwrapErr();
    t.is(e.code, 'VCPU_INVALID_CPUSET');
    t.true(e.message.includes(JSON.stringify(bad)), e.message);
  });
}

test('a bad default_vcpus text is rejected with VCPU_INVALID_DECIMAL naming the text', (t) => {
  const e = call((n) => n.calcSandboxVcpus('1e3', []))._unsafeUnwrapErr();
  t.is(e.code, 'VCPU_INVALID_DECIMAL');
  t.regex(e.message, /"1e3"/);
});

test('a negative period is rejected with VCPU_INVALID_QUOTA', (t) => {
  const e = call((n) =>
    n.calcSandboxVcpus('1', [{ quotaUs: 1000, periodUs: -5 }]),
  )._unsafeUnwrapErr();
  t.is(e.code, 'VCPU_INVALID_QUOTA');
});

test('native and TS twin agree on random containers', (t) => {
  const container = fc.record(
    {
      quotaUs: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 50_000_000 })),
      periodUs: fc.integer({ min: 0, max: 2_000_000 }),
      cpus: fc.constantFrom('0-3', '2-5', '7', '1,3,5'),
    },
    { requiredKeys: ['quotaUs'] },
  );
  fc.assert(
    fc.property(
      fc.constantFrom('0', '0.5', '1', '1.25', '3'),
      fc.array(container, { maxLength: 30 }),
      (def, cs) => {
        const native = call((n) => n.calcSandboxVcpus(def, cs))._unsafeUnwrap();
        const twin = sandboxVcpusTwin(def, cs)._unsafeUnwrap();
        return (
          native.exact === `${twin.numerator}/${twin.denominator}` && native.ceil === twin.ceil
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
