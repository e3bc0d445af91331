// Host cgroup plan (behaviour.md feature 2; reference cgroups/{mod,utils}.rs and cgroups-rs
// systemd helpers): driver, sandbox path, systemd slice/unit, overhead cgroup, vCPU placement.
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';

export type CgroupDriver = 'cgroupfs' | 'systemd';
/** Host cgroup layout: v1 (incl. hybrid, where controllers live in v1 hierarchies) or unified v2. */
export type CgroupVersion = 'v1' | 'v2';
export type VcpuPlacement = 'threads' | 'process' | 'none';

export interface SystemdUnit {
  /** Slice the scope goes in, e.g. `kubepods-burstable-pod1.slice`. */
  readonly slice: string;
  /** Transient unit name, e.g. `cri-containerd-abc.scope`. */
  readonly unit: string;
  /** Slice path below the cgroup root, e.g. `kubepods.slice/kubepods-burstable.slice/…`. */
  readonly slicePath: string;
}

export interface CgroupPlan {
  readonly driver: CgroupDriver;
  readonly version: CgroupVersion;
  /** cgroupfs: path below the hierarchy root; systemd: the `slice:prefix:name` triple. */
  readonly path: string;
  readonly systemd: SystemdUnit | null;
  /** Where kata-ts itself runs when `sandbox_cgroup_only = false`, else null. */
  readonly overheadPath: string | null;
  readonly overheadSystemd: SystemdUnit | null;
  /** What moves into the sandbox cgroup after VM start. */
  readonly vcpuPlacement: VcpuPlacement;
  readonly sandboxCgroupOnly: boolean;
}

export const DEFAULT_SANDBOX_CGROUP_PARENT = 'kata_sandboxed_pod';
export const FS_OVERHEAD_PARENT = 'kata_overhead';
export const SYSTEMD_OVERHEAD_SLICE = 'kata-overhead.slice';
export const SYSTEMD_OVERHEAD_PREFIX = 'runtime-rs';

/** `slice:prefix:name` with a non-empty first part ending in `.slice` selects systemd. */
export function isSystemdCgroup(path: string): boolean {
  const parts = path.split(':');
  return parts.length === 3 && parts[0]!.length > 0 && parts[0]!.endsWith('.slice');
}

/** Overhead cgroup path for a sandbox (reference `gen_overhead_path`). */
export function overheadPath(systemd: boolean, name: string): string {
  return systemd
    ? `${SYSTEMD_OVERHEAD_SLICE}:${SYSTEMD_OVERHEAD_PREFIX}:${name}`
    : `${FS_OVERHEAD_PARENT}/${name.replace(/^\/+/, '')}`;
}

/** Transient unit name (cgroups-rs `new_unit_name`). */
export function unitName(prefix: string, name: string): string {
  if (name.endsWith('.slice')) return name;
  return prefix === '' ? `${name}.scope` : `${prefix}-${name}.scope`;
}

/**
 * Expands a slice name into its path (cgroups-rs `expand_slice`, systemd's rule):
 * `a-b-c.slice` → `a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root (``).
 */
export function expandSlice(slice: string): Result<string, string> {
  if (!slice.endsWith('.slice'))
    return err(`invalid slice name ${JSON.stringify(slice)}: must end in .slice`);
  if (slice.includes('/'))
    return err(`invalid slice name ${JSON.stringify(slice)}: must not contain '/'`);
  if (slice === '-.slice') return ok('');
  const stem = slice.slice(0, -'.slice'.length);
  const parts = stem.split('-');
  if (stem === '' || parts.some((p) => p === ''))
    return err(`invalid slice name ${JSON.stringify(slice)}: empty component`);
  const levels: string[] = [];
  let prefix = '';
  for (const part of parts) {
    prefix = prefix === '' ? part : `${prefix}-${part}`;
    levels.push(`${prefix}.slice`);
  }
  return ok(levels.join('/'));
}

/** Splits `slice:prefix:name` into slice, unit and slice path (cgroups-rs SystemdManager::new). */
export function parseSystemdPath(path: string): Result<SystemdUnit, string> {
  const parts = path.split(':');
  if (parts.length !== 3)
    return err(`systemd cgroup path ${JSON.stringify(path)} must be slice:prefix:name`);
  const [rawSlice, prefix, name] = parts as [string, string, string];
  if (name === '') return err(`systemd cgroup path ${JSON.stringify(path)} has an empty name`);
  const slice = rawSlice === '' ? 'system.slice' : rawSlice;
  return expandSlice(slice).map((slicePath) => ({
    slice,
    unit: unitName(prefix, name),
    slicePath,
  }));
}

function checkFsPath(path: string, field: string, source: string): Problem | null {
  const bad = (what: string) => problem('spec', source, field, path, what);
  if (path.includes('\0')) return bad('contains a NUL byte');
  const parts = path.split('/').filter((p) => p !== '');
  if (parts.length === 0)
    return bad('resolves to the cgroup root; a sandbox needs a cgroup of its own');
  if (parts.some((p) => p === '..' || p === '.'))
    return bad("must not contain '.' or '..' components");
  return null;
}

export interface CgroupInput {
  readonly sandboxId: string;
  /** `linux.cgroupsPath` of the sandbox spec, if any. */
  readonly cgroupsPath: string | undefined;
  readonly sandboxCgroupOnly: boolean;
  /** Host fact: the cgroup layout the controllers live in. */
  readonly version: CgroupVersion;
  /** Where the path came from, for errors (the bundle's config.json). */
  readonly source: string;
}

/** Plans the sandbox's host cgroups. */
export function planCgroups(input: CgroupInput): Result<CgroupPlan, PlanError> {
  const field = 'linux.cgroupsPath';
  const given = input.cgroupsPath !== undefined && input.cgroupsPath !== '';
  const raw = given ? input.cgroupsPath! : `${DEFAULT_SANDBOX_CGROUP_PARENT}/${input.sandboxId}`;
  const driver: CgroupDriver = isSystemdCgroup(raw) ? 'systemd' : 'cgroupfs';
  const systemdMode = driver === 'systemd';

  let systemd: SystemdUnit | null = null;
  let path = raw;
  if (systemdMode) {
    const parsed = parseSystemdPath(raw);
    if (parsed.isErr())
      return err(planError(problem('spec', input.source, field, raw, parsed.error)));
    systemd = parsed.value;
  } else {
    // Relative to each hierarchy's root: leading '/' trimmed (as the reference), and empty
    // components dropped so `a//b/` and `a/b` name the same cgroup.
    const bad = checkFsPath(raw, given ? field : 'sandbox id', given ? input.source : 'sandbox id');
    if (bad) return err(planError(bad));
    path = raw
      .split('/')
      .filter((p) => p !== '')
      .join('/');
  }

  const overhead = input.sandboxCgroupOnly ? null : overheadPath(systemdMode, input.sandboxId);
  const overheadSystemd =
    overhead && systemdMode ? parseSystemdPath(overhead).unwrapOr(null) : null;
  // With an overhead cgroup the VMM starts outside the sandbox cgroup and its vCPUs are moved in:
  // per thread only on v1 + cgroupfs; every other combination moves the whole process.
  const vcpuPlacement: VcpuPlacement = input.sandboxCgroupOnly
    ? 'none'
    : input.version === 'v1' && driver === 'cgroupfs'
      ? 'threads'
      : 'process';

  return ok({
    driver,
    version: input.version,
    path,
    systemd,
    overheadPath: overhead,
    overheadSystemd,
    vcpuPlacement,
    sandboxCgroupOnly: input.sandboxCgroupOnly,
  });
}
