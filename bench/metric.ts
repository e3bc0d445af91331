// Shared shape of benchmark results (bench/results.json) and a small timing helper.

/** One benchmark figure: ours against a peer measured in the same run; ratio > 1 means ours is better. */
export interface Metric {
  readonly ours: number;
  readonly peer: number;
  readonly ratio: number;
  readonly unit: string;
  readonly note: string;
}

export type Metrics = Record<string, Metric>;

/** Builds a metric where a higher value is better (throughput). */
export function higherIsBetter(ours: number, peer: number, unit: string, note: string): Metric {
  return { ours, peer, ratio: peer === 0 ? 0 : ours / peer, unit, note };
}

/** Builds a metric where a lower value is better (latency, memory). */
export function lowerIsBetter(ours: number, peer: number, unit: string, note: string): Metric {
  return { ours, peer, ratio: ours === 0 ? 0 : peer / ours, unit, note };
}

/** Calls/s of `fn`: the median of `rounds` runs of ~`ms` each, after a warm-up. */
export function callsPerSecond(fn: () => unknown, ms = 300, rounds = 5): number {
  const once = (budget: number): number => {
    let calls = 0;
    const start = process.hrtime.bigint();
    const end = start + BigInt(budget) * 1_000_000n;
    let now = start;
    while (now < end) {
      for (let i = 0; i < 16; i++) fn();
      calls += 16;
      now = process.hrtime.bigint();
    }
    return calls / (Number(now - start) / 1e9);
  };
  once(Math.min(ms, 100));
  const runs = Array.from({ length: rounds }, () => once(ms)).sort((a, b) => a - b);
  return runs[Math.floor(rounds / 2)]!;
}
