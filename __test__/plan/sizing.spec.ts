import test from 'ava';
import {
  memoryMiBFromBytes,
  planSizing,
  resizeVcpus,
  staticRequestFrom,
  staticSizing,
  type SizingInput,
} from '../../ts/plan/sizing.js';

const MiB = 1024 * 1024;

function input(over: Partial<SizingInput> = {}): SizingInput {
  return {
    defaultVcpus: '1',
    overheadVcpus: '0',
    defaultMaxVcpus: 0,
    defaultMemoryMiB: 2048,
    overheadMemoryMiB: 0,
    defaultMaxMemoryMiB: 0,
    staticSandboxResourceMgmt: false,
    hostCpus: 64,
    hostMemoryMiB: 65536,
    staticRequest: null,
    containers: [],
    ...over,
  };
}

// vectors.md §5.4 setup_config rows: (default_vcpus, overhead_vcpus, default_maxvcpus, default_mem,
// overhead_mem, default_maxmem, static) with requested (vcpu as quota/100000, mem MiB).
type StaticRow = [
  string,
  [string, string, number, number, number, number, boolean],
  [number, number],
  { vcpus?: string; max?: number; mem?: number; maxMem?: number; error?: RegExp },
];
const staticRows: StaticRow[] = [
  [
    'overhead plus request',
    ['1', '0.5', 4, 256, 128, 4096, true],
    [1.2, 512],
    { vcpus: '17/10', max: 2, mem: 640, maxMem: 4096 },
  ],
  [
    'not static: config unchanged',
    ['1', '0.5', 4, 256, 128, 4096, false],
    [1.2, 512],
    { vcpus: '1/1', max: 4, mem: 256, maxMem: 4096 },
  ],
  [
    'cpu only: memory is the overhead',
    ['1', '1', 2, 256, 128, 4096, true],
    [2.5, 0],
    { vcpus: '7/2', max: 4, mem: 128 },
  ],
  [
    'cpu only, larger max',
    ['1', '0.5', 8, 256, 128, 4096, true],
    [1.2, 0],
    { vcpus: '17/10', max: 2 },
  ],
  [
    'memory only raises max memory',
    ['1', '0.5', 4, 256, 128, 300, true],
    [0, 512],
    { vcpus: '1/1', mem: 640, maxMem: 640 },
  ],
  [
    'no request: defaults kept, max = ceil(default)',
    ['2', '0.5', 8, 512, 128, 4096, true],
    [0, 0],
    { vcpus: '2/1', max: 2, mem: 512 },
  ],
  [
    'zero memory is an error',
    ['1', '0.5', 8, 1024, 0, 4096, true],
    [1, 0],
    { error: /computed sandbox memory is 0 MiB/ },
  ],
  [
    '0.75 + 1.25 = 2',
    ['3', '0.75', 8, 1024, 256, 4096, true],
    [1.25, 1024],
    { vcpus: '2/1', mem: 1280 },
  ],
  ['0.5 + 1.5 = 2', ['3', '0.5', 8, 1024, 128, 4096, true], [1.5, 0], { vcpus: '2/1', mem: 128 }],
  [
    'memory only: at least one vCPU',
    ['3', '0.5', 8, 1024, 128, 4096, true],
    [0, 512],
    { vcpus: '1/1', mem: 640 },
  ],
  ['no overhead', ['3', '0', 8, 1024, 0, 4096, true], [1.25, 1024], { vcpus: '5/4', mem: 1024 }],
  [
    'no overhead, memory only',
    ['3', '0', 8, 1024, 0, 4096, true],
    [0, 512],
    { vcpus: '1/1', mem: 512 },
  ],
];

for (const [
  title,
  [dv, ov, maxv, mem, ovMem, maxMem, isStatic],
  [vcpu, reqMem],
  want,
] of staticRows) {
  test(`static sizing: ${title}`, (t) => {
    const staticRequest = {
      ...(vcpu > 0 ? { quotaUs: Math.round(vcpu * 100_000), periodUs: 100_000 } : {}),
      ...(reqMem > 0 ? { memoryLimitBytes: reqMem * MiB } : {}),
    };
    const r = planSizing(
      input({
        defaultVcpus: dv,
        overheadVcpus: ov,
        defaultMaxVcpus: maxv,
        defaultMemoryMiB: mem,
        overheadMemoryMiB: ovMem,
        defaultMaxMemoryMiB: maxMem,
        staticSandboxResourceMgmt: isStatic,
        staticRequest,
      }),
    );
    if (want.error) {
      t.regex(r._unsafeUnwrapErr().problems[0]!.message, want.error);
      return;
    }
    const plan = r._unsafeUnwrap();
    if (want.vcpus) t.is(plan.vcpus.exact, want.vcpus);
    if (want.max !== undefined) t.is(plan.vcpus.max, want.max);
    if (want.mem !== undefined) t.is(plan.memoryMiB, want.mem);
    if (want.maxMem !== undefined) t.is(plan.maxMemoryMiB, want.maxMem);
  });
}

test('static request from sandbox annotations: 220000/100000 → 3 vCPUs, 512 MiB', (t) => {
  const req = staticRequestFrom(
    'pod_sandbox',
    {
      'io.kubernetes.cri.sandbox-cpu-quota': '220000',
      'io.kubernetes.cri.sandbox-cpu-period': '100000',
      'io.kubernetes.cri.sandbox-memory': String(512 * MiB),
    },
    {},
  )._unsafeUnwrap();
  const s = staticSizing(
    input({
      staticSandboxResourceMgmt: true,
      overheadVcpus: '0',
      overheadMemoryMiB: 0,
      staticRequest: req,
    }),
  )._unsafeUnwrap();
  t.is(s.defaultVcpus, '11/5');
  t.is(s.maxVcpus, 3);
  t.is(s.memoryMiB, 512);
});

test('static memory of 513 MiB rounds up to an even 514', (t) => {
  t.is(memoryMiBFromBytes(513 * MiB), 514);
  t.is(memoryMiBFromBytes(512 * MiB), 512);
});

test('a single container sizes statically from its own limits; a pod container does not', (t) => {
  const own = { quotaUs: 50_000, periodUs: 100_000 };
  t.deepEqual(staticRequestFrom('single_container', {}, own)._unsafeUnwrap(), own);
  t.is(staticRequestFrom('pod_container', {}, own)._unsafeUnwrap(), null);
});

test('a non-integer sandbox annotation is an error naming the key', (t) => {
  const e = staticRequestFrom(
    'pod_sandbox',
    { 'io.kubernetes.cri.sandbox-cpu-quota': '1.5' },
    {},
  )._unsafeUnwrapErr();
  t.is(e.problems[0]!.field, 'io.kubernetes.cri.sandbox-cpu-quota');
});

test('ten 0.1-CPU containers on top of 0 default vCPUs end at 1 vCPU', (t) => {
  const containers = Array.from({ length: 10 }, (_, i) => ({
    id: `c${i}`,
    limits: { quotaUs: 10_000, periodUs: 100_000 },
  }));
  const plan = planSizing(input({ defaultVcpus: '0', containers }))._unsafeUnwrap();
  t.is(plan.vcpus.boot, 1);
  t.deepEqual(
    plan.containers.map((c) => c.vcpusAfter),
    Array(10).fill(1),
  );
});

test('vCPUs grow as containers are added and are capped at the maximum', (t) => {
  const containers = [
    { id: 'a', limits: { quotaUs: 150_000, periodUs: 100_000 } },
    { id: 'b', limits: { quotaUs: 200_000, periodUs: 100_000 } },
    { id: 'c', limits: { quotaUs: 400_000, periodUs: 100_000 } },
  ];
  const plan = planSizing(
    input({ defaultVcpus: '1', defaultMaxVcpus: 4, containers }),
  )._unsafeUnwrap();
  t.deepEqual(plan.vcpus, { boot: 1, max: 4, exact: '1/1' });
  t.deepEqual(
    plan.containers.map((c) => c.vcpusAfter),
    [3, 4, 4],
  );
});

test('default_maxvcpus 0 or above the host means the host CPU count', (t) => {
  t.is(planSizing(input({ defaultMaxVcpus: 0, hostCpus: 2 }))._unsafeUnwrap().vcpus.max, 2);
  t.is(planSizing(input({ defaultMaxVcpus: 16, hostCpus: 2 }))._unsafeUnwrap().vcpus.max, 2);
});

test('a fractional default boots the rounded-up count and keeps the exact value', (t) => {
  t.deepEqual(planSizing(input({ defaultVcpus: '0.75' }))._unsafeUnwrap().vcpus, {
    boot: 1,
    max: 64,
    exact: '3/4',
  });
  t.deepEqual(planSizing(input({ defaultVcpus: '1.5' }))._unsafeUnwrap().vcpus, {
    boot: 2,
    max: 64,
    exact: '3/2',
  });
});

test('memory grows with container limits on top of default_memory', (t) => {
  const containers = [
    { id: 'a', limits: { memoryLimitBytes: 256 * MiB } },
    { id: 'b', limits: {} },
    { id: 'c', limits: { memoryLimitBytes: 512 * MiB } },
  ];
  const plan = planSizing(input({ defaultMemoryMiB: 2048, containers }))._unsafeUnwrap();
  t.is(plan.memoryMiB, 2048);
  t.deepEqual(
    plan.containers.map((c) => c.memoryMiBAfter),
    [2304, 2304, 2816],
  );
});

test('adding never shrinks and removing never grows the vCPU count', (t) => {
  t.is(resizeVcpus(4, 2, 'add', 8), 4);
  t.is(resizeVcpus(2, 5, 'add', 8), 5);
  t.is(resizeVcpus(2, 5, 'remove', 8), 2);
  t.is(resizeVcpus(5, 3, 'remove', 8), 3);
  t.is(resizeVcpus(2, 20, 'add', 8), 8);
  t.is(resizeVcpus(1, 0, 'remove', 8), 1);
});

test('a bad container cpuset is an error naming the container', (t) => {
  const e = planSizing(
    input({ containers: [{ id: 'web', limits: { quotaUs: -1, cpus: '3-1' } }] }),
  )._unsafeUnwrapErr();
  t.is(e.problems[0]!.field, 'containers[web].linux.resources.cpu');
  t.regex(e.problems[0]!.message, /invalid cpuset "3-1"/);
});
