// Independent checks of a ResourcePlan: where its guest paths point, where the host will write,
// and what the vCPU counts must be by exact rational arithmetic (vectors.md §5.1), written
// without the planner's code (BigInt fractions, cpusets as merged intervals).
import { posix } from 'node:path';
import type { ResourcePlan } from '../../ts/plan/plan.js';

const GUEST_ROOT = '/run/kata-containers/';
const GUEST_SHARE = '/run/kata-containers/shared/containers/';

/** `p` is absolute, normalized, free of NUL, and strictly below `root` (which ends in `/`). */
export function isBelow(root: string, p: string): boolean {
  return (
    p.startsWith(root) &&
    p.length > root.length &&
    posix.normalize(p) === p &&
    !p.includes('\0') &&
    !p.split('/').includes('..')
  );
}

/** Problems with the guest paths of a plan (empty: all fine). */
export function guestPathProblems(p: ResourcePlan): string[] {
  const bad: string[] = [];
  const check = (what: string, root: string, x: string) => {
    if (!isBelow(root, x)) bad.push(`${what} ${JSON.stringify(x)} is not below ${root}`);
  };
  const sandboxStorages = ((p.createSandbox as any).storages ?? []) as any[];
  for (const s of sandboxStorages)
    check('sandbox storage', GUEST_ROOT, String(s.mountPoint ?? '').replace(/\/$/, ''));
  for (const c of p.containers) {
    check(`${c.id} rootfs`, GUEST_ROOT, c.rootfs.guestPath);
    const req = c.createContainer as any;
    for (const s of (req.storages ?? []) as any[])
      check(`${c.id} storage`, GUEST_ROOT, String(s.mountPoint));
    const mounts = (req.OCI?.Mounts ?? []) as any[];
    c.volumes.forEach((v, i) => {
      if (v.kind !== 'default')
        check(`${c.id} mounts[${i}] (${v.kind}) source`, GUEST_ROOT, String(mounts[i]?.source));
    });
    for (const x of c.copies) check(`${c.id} copy`, GUEST_SHARE, x.guestPath);
    for (const b of c.sharedFsBinds) check(`${c.id} shared-fs bind`, GUEST_SHARE, b.guestPath);
  }
  for (const v of p.copyVolumes)
    for (const d of v.destinations as any[])
      check('copy volume', GUEST_SHARE, String(d.guestPath ?? d));
  return bad;
}

/** Problems with the host paths the plan writes (empty: all below the sandbox's host dirs). */
export function hostWriteProblems(
  p: ResourcePlan,
  bundlePaths: ReadonlyMap<string, string>,
): string[] {
  const bad: string[] = [];
  const d = p.hostDirs;
  const check = (what: string, root: string, x: string) => {
    if (!isBelow(`${root}/`, x)) bad.push(`${what} ${JSON.stringify(x)} is not below ${root}`);
  };
  if (p.rootlessDir !== null)
    for (const [k, v] of Object.entries(d)) check(`hostDirs.${k}`, p.rootlessDir, v);
  if (p.initdata) {
    check('initdata image', d.initdata, p.initdata.hostPath);
    if (p.initdata.device.pathOnHost !== p.initdata.hostPath)
      bad.push('initdata device is not the image');
  }
  for (const c of p.containers) {
    if (c.rootfs.sharedBind) check(`${c.id} rootfs bind`, d.sharedRw, c.rootfs.sharedBind.hostPath);
    if (
      c.rootfs.hostMount &&
      c.rootfs.hostMount.target !== posix.join(bundlePaths.get(c.id) ?? '?', 'rootfs')
    ) {
      bad.push(`${c.id} rootfs mount target ${c.rootfs.hostMount.target} is not <bundle>/rootfs`);
    }
    for (const b of c.sharedFsBinds) {
      check(`${c.id} shared-fs bind`, d.sharedRw, b.hostPath);
      check(`${c.id} shared-fs ro bind`, d.sharedRo, b.hostReadOnlyPath);
    }
    for (const m of c.sharedMountPoints) check(`${c.id} mount point`, d.sharedRw, m.path);
  }
  return bad;
}

/** An exact non-negative rational. */
export interface Fraction {
  readonly n: bigint;
  readonly d: bigint;
}

const gcd = (a: bigint, b: bigint): bigint => (b === 0n ? (a < 0n ? -a : a) : gcd(b, a % b));
function frac(n: bigint, d: bigint): Fraction {
  const g = gcd(n, d) || 1n;
  return { n: n / g, d: d / g };
}
const add = (a: Fraction, b: Fraction) => frac(a.n * b.d + b.n * a.d, a.d * b.d);
const greater = (a: Fraction, b: Fraction) => a.n * b.d > b.n * a.d;
export const ceilOf = (a: Fraction): bigint => (a.n + a.d - 1n) / a.d;

/** `digits[.digits]` → exact fraction; null for anything else. */
export function decimal(text: string): Fraction | null {
  const m = /^(\d*)(?:\.(\d*))?$/.exec(text);
  if (!m || text === '' || text === '.') return null;
  const f = m[2] ?? '';
  return frac(BigInt(`${m[1] ?? ''}${f}` || '0'), 10n ** BigInt(f.length));
}

/** Number of CPUs in a cpuset, by merging intervals (never enumerating); null when malformed. */
export function cpusetSize(texts: readonly string[]): bigint | null {
  const ranges: [bigint, bigint][] = [];
  for (const text of texts) {
    if (text.trim() === '') continue;
    for (const item of text.split(',')) {
      const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(item);
      if (!m) return null;
      const a = BigInt(m[1]!);
      const b = m[2] === undefined ? a : BigInt(m[2]);
      if (m[2] !== undefined && a >= b) return null;
      ranges.push([a, b]);
    }
  }
  ranges.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  let size = 0n;
  let end = -1n;
  for (const [a, b] of ranges) {
    if (b <= end) continue;
    size += b - (a > end ? a : end + 1n) + 1n;
    end = b;
  }
  return size;
}

export interface CpuLimits {
  readonly quota?: number;
  readonly period?: number;
  readonly cpus?: string;
}

/**
 * Exact sandbox vCPUs for `def` and the containers so far (vectors §5.1, HEAD): Σ quota/period of
 * containers with a quota ≥ 0 and a period > 0; with no quota but cpusets, the size of their
 * union (the default not added); with a quota, the sum plus the default; else max(default, 1).
 */
export function exactVcpus(def: Fraction, containers: readonly CpuLimits[]): Fraction | null {
  if (containers.length === 0) return def;
  let sum = frac(0n, 1n);
  for (const c of containers) {
    if (c.quota !== undefined && c.period !== undefined && c.quota >= 0 && c.period > 0)
      sum = add(sum, frac(BigInt(c.quota), BigInt(c.period)));
  }
  const union = cpusetSize(containers.flatMap((c) => (c.cpus === undefined ? [] : [c.cpus])));
  if (union === null) return null;
  if (sum.n === 0n && union > 0n) return frac(union, 1n);
  if (sum.n > 0n) return add(sum, def);
  return greater(def, frac(1n, 1n)) ? def : frac(1n, 1n);
}

/** vCPU counts after each container: add never shrinks, at least 1, at most `max`. */
export function expectedVcpusAfter(
  def: Fraction,
  containers: readonly CpuLimits[],
  boot: number,
  max: number,
): number[] | null {
  const out: number[] = [];
  let current = boot;
  for (let i = 0; i < containers.length; i++) {
    const exact = exactVcpus(def, containers.slice(0, i + 1));
    if (exact === null) return null;
    const whole = Number(ceilOf(exact) > 1n ? ceilOf(exact) : 1n);
    current = Math.min(Math.max(current, whole, 1), max);
    out.push(current);
  }
  return out;
}

const MIB = 1024n * 1024n;
const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

/**
 * Memory after each container (non-static): the default plus every limit so far, capped by the
 * maximum, and never below what the VM already has (runtime-rs resize_memory cannot unplug).
 */
export function expectedMemoryAfter(
  defaultMiB: number,
  maxMiB: number,
  limitsBytes: readonly (number | undefined)[],
): number[] {
  let sum = 0n;
  let current = BigInt(defaultMiB);
  return limitsBytes.map((l) => {
    if (l !== undefined && l > 0) sum += ceilDiv(BigInt(l), MIB);
    let want = BigInt(defaultMiB) + sum;
    if (want > BigInt(maxMiB)) want = BigInt(maxMiB);
    if (want > current) current = want;
    return Number(current);
  });
}

export interface StaticRequest {
  readonly quota?: number;
  readonly period?: number;
  readonly memoryBytes?: number;
}

/**
 * Static sizing (vectors §5.4, `initial_size.rs`): with no request the defaults; else vCPUs =
 * max(overhead + quota/period, 1) and max vCPUs its ceiling, memory = overhead + the limit in MiB
 * rounded up to even; max memory raised to at least that.
 */
export function expectedStatic(
  cfg: {
    def: Fraction;
    overhead: Fraction;
    defaultMemoryMiB: number;
    overheadMemoryMiB: number;
    defaultMaxMemoryMiB: number;
  },
  req: StaticRequest,
): { exact: Fraction; max: bigint; memoryMiB: number; maxMemoryMiB: number } | 'zero-memory' {
  const asked =
    req.quota !== undefined && req.period !== undefined && req.quota > 0 && req.period > 0
      ? frac(BigInt(req.quota), BigInt(req.period))
      : null;
  let memAsked = 0n;
  if (req.memoryBytes !== undefined && req.memoryBytes > 0) {
    memAsked = ceilDiv(BigInt(req.memoryBytes), MIB);
    if (memAsked % 2n === 1n) memAsked += 1n;
  }
  if (asked === null && memAsked === 0n) {
    const c = ceilOf(cfg.def);
    return {
      exact: cfg.def,
      max: c > 1n ? c : 1n,
      memoryMiB: cfg.defaultMemoryMiB,
      maxMemoryMiB: cfg.defaultMaxMemoryMiB,
    };
  }
  const memoryMiB = BigInt(cfg.overheadMemoryMiB) + memAsked;
  if (memoryMiB === 0n) return 'zero-memory';
  const total = asked === null ? cfg.overhead : add(cfg.overhead, asked);
  const exact = total.n < total.d ? frac(1n, 1n) : total;
  const maxMem =
    BigInt(cfg.defaultMaxMemoryMiB) > memoryMiB ? BigInt(cfg.defaultMaxMemoryMiB) : memoryMiB;
  return { exact, max: ceilOf(exact), memoryMiB: Number(memoryMiB), maxMemoryMiB: Number(maxMem) };
}
