// A pure-TypeScript BigInt twin of the native `calcSandboxVcpus` (crates/vcpu). It exists so the
// benchmark can weigh the Node-API crossing against doing the same exact arithmetic in JS, and so
// a property test can check the two agree. The planner itself calls the native function.
import { err, ok, type Result } from 'neverthrow';

export interface TwinContainer {
  readonly quotaUs?: number;
  readonly periodUs?: number;
  readonly cpus?: string;
}

export interface TwinAmount {
  readonly numerator: bigint;
  readonly denominator: bigint;
  readonly ceil: number;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function reduce(n: bigint, d: bigint): [bigint, bigint] {
  const g = gcd(n, d);
  return g === 0n ? [0n, 1n] : [n / g, d / g];
}

/** Exact decimal text → fraction; Err for anything but `digits[.digits]`. */
export function parseDecimalTwin(text: string): Result<[bigint, bigint], string> {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m || text === '' || text === '.' || text.length > 64)
    return err(`invalid vCPU amount ${JSON.stringify(text)}`);
  const frac = m[2] ?? '';
  const digits = `${m[1] ?? ''}${frac}` || '0';
  return ok(reduce(BigInt(digits), 10n ** BigInt(frac.length)));
}

/** cpuset text → CPU numbers (same acceptance rules as the native parser). */
export function parseCpusetTwin(text: string): Result<Set<number>, string> {
  const set = new Set<number>();
  if (text.trim() === '') return ok(set);
  for (const raw of text.split(',')) {
    const item = raw.trim();
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m) return err(`invalid cpuset ${JSON.stringify(text)}`);
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (first > 65535 || last > 65535 || (m[2] !== undefined && first >= last)) {
      return err(`invalid cpuset ${JSON.stringify(text)}`);
    }
    for (let i = first; i <= last; i++) set.add(i);
  }
  return ok(set);
}

/** Same semantics as `sandbox_vcpus` in crates/vcpu/src/sizing.rs. */
export function sandboxVcpusTwin(
  defaultVcpus: string,
  containers: readonly TwinContainer[],
): Result<TwinAmount, string> {
  const parsed = parseDecimalTwin(defaultVcpus);
  if (parsed.isErr()) return err(parsed.error);
  const [dn, dd] = parsed.value;
  let n = 0n;
  let d = 1n;
  const union = new Set<number>();
  const byPeriod = new Map<number, bigint>();
  for (const c of containers) {
    if (c.quotaUs !== undefined && c.periodUs !== undefined && c.quotaUs >= 0 && c.periodUs > 0) {
      byPeriod.set(c.periodUs, (byPeriod.get(c.periodUs) ?? 0n) + BigInt(c.quotaUs));
    }
    if (c.cpus !== undefined) {
      const set = parseCpusetTwin(c.cpus);
      if (set.isErr()) return err(set.error);
      for (const cpu of set.value) union.add(cpu);
    }
  }
  for (const [period, quota] of byPeriod) {
    [n, d] = reduce(n * BigInt(period) + quota * d, d * BigInt(period));
  }
  let result: [bigint, bigint];
  if (containers.length === 0) result = [dn, dd];
  else if (n === 0n && union.size > 0) result = [BigInt(union.size), 1n];
  else if (n > 0n) result = reduce(n * dd + dn * d, d * dd);
  else result = dn > dd ? [dn, dd] : [1n, 1n];
  const [rn, rd] = result;
  return ok({ numerator: rn, denominator: rd, ceil: Number((rn + rd - 1n) / rd) });
}
