// vcpu.native_vs_ts: the native exact vCPU sum (one Node-API call, objects converted field by
// field) against the pure-TypeScript BigInt twin, for 1, 10 and 1000 containers.
// vcpu.native_packed_vs_ts: the same sum with quotas/periods passed as two Float64Arrays, which
// separates the cost of converting JS objects from the cost of crossing into native code.
// Both sides are ours: `internal` figures, not counted as comparisons with a peer.
import { call } from '../ts/native.js';
import { sandboxVcpusTwin } from '../ts/plan/vcpu-twin.js';
import { callsPerSecond, higherIsBetter, type Metrics } from './metric.js';

function containers(n: number) {
  // A realistic mix: most share the default period, some use their own.
  return Array.from({ length: n }, (_, i) => ({
    quotaUs: 50_000 + ((i * 7919) % 200_000),
    periodUs: i % 5 === 0 ? 250_000 : 100_000,
  }));
}

export async function run(): Promise<Metrics> {
  const metrics: Metrics = {};
  for (const n of [1, 10, 1000]) {
    const input = containers(n);
    const native = callsPerSecond(() =>
      call((a) => a.calcSandboxVcpus('0.5', input))._unsafeUnwrap(),
    );
    const twin = callsPerSecond(() => sandboxVcpusTwin('0.5', input)._unsafeUnwrap());
    const quotas = Float64Array.from(input, (c) => c.quotaUs);
    const periods = Float64Array.from(input, (c) => c.periodUs);
    const packed = callsPerSecond(() =>
      call((a) => a.calcSandboxVcpusPacked('0.5', quotas, periods))._unsafeUnwrap(),
    );
    metrics[`vcpu.native_vs_ts.${n}`] = higherIsBetter(
      Math.round(native),
      Math.round(twin),
      'calls/s',
      `${n} container(s): native calcSandboxVcpus (objects) vs TS BigInt twin in the same process (internal: both are ours)`,
      'internal',
    );
    metrics[`vcpu.native_packed_vs_ts.${n}`] = higherIsBetter(
      Math.round(packed),
      Math.round(twin),
      'calls/s',
      `${n} container(s): native calcSandboxVcpusPacked (Float64Arrays) vs TS BigInt twin (internal: both are ours)`,
      'internal',
    );
  }
  const ten = metrics['vcpu.native_vs_ts.10']!;
  metrics['vcpu.native_vs_ts'] = {
    ...ten,
    note: `10 containers (see .1 and .1000 for the ends); ${ten.note}`,
  };
  return metrics;
}
