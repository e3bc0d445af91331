// Shared shape of benchmark results (bench/results.json) and a small timing helper.

/**
 * What a figure compares, so the summary never counts a figure as "beats a peer" unless it is one:
 * - `peer`: ours against another program doing the same job (a tool, a C floor, a bare VM),
 *   measured the same way in the same run; ratio > 1 means ours is better.
 * - `internal`: ours against another implementation of ours (native vs the TypeScript twin).
 * - `scaling`: ours at one size against ours at another (≥ 1: linear or better).
 * - `absolute`: a figure with nothing to compare against (peer and ratio are null).
 */
export type MetricKind = 'peer' | 'internal' | 'scaling' | 'absolute';

export interface Metric {
  readonly kind: MetricKind;
  readonly ours: number;
  readonly peer: number | null;
  readonly ratio: number | null;
  readonly unit: string;
  readonly note: string;
}

export type Metrics = Record<string, Metric>;

const ratioOf = (better: number, worse: number): number | null =>
  worse === 0 ? null : better / worse;

/** Against a peer, higher is better (throughput). */
export function higherIsBetter(
  ours: number,
  peer: number,
  unit: string,
  note: string,
  kind: 'peer' | 'internal' = 'peer',
): Metric {
  return { kind, ours, peer, ratio: ratioOf(ours, peer), unit, note };
}

/** Against a peer, lower is better (latency, memory). */
export function lowerIsBetter(
  ours: number,
  peer: number,
  unit: string,
  note: string,
  kind: 'peer' | 'internal' = 'peer',
): Metric {
  return { kind, ours, peer, ratio: ratioOf(peer, ours), unit, note };
}

/** Ours at `size` against ours at a base size scaled up linearly (`linear`); lower is better. */
export function scaling(ours: number, linear: number, unit: string, note: string): Metric {
  return { kind: 'scaling', ours, peer: linear, ratio: ratioOf(linear, ours), unit, note };
}

/** A figure with no peer. */
export function absolute(ours: number, unit: string, note: string): Metric {
  return { kind: 'absolute', ours, peer: null, ratio: null, unit, note };
}

/** The kind of an entry written before kinds existed: peer-less (peer 0) entries are absolute. */
export function kindOf(m: Partial<Metric>): MetricKind {
  if (m.kind === 'peer' || m.kind === 'internal' || m.kind === 'scaling' || m.kind === 'absolute')
    return m.kind;
  return !m.peer ? 'absolute' : 'peer';
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
