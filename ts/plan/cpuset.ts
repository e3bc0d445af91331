// Sandbox cpuset (reference resource_inner.rs `collect_sandbox_cpuset`, vCPU pinning): the union
// of the containers' `cpus`, written to the sandbox cgroup. Unlike the reference, which joins the
// distinct container strings unnormalised (`0-3` + `2-5` → `0-3,2-5` in hash order), the union is
// written in canonical form (`0-5`), so the file content is deterministic.
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { call } from '../native.js';

export interface CpusetSource {
  /** Where the value came from, e.g. `web/config.json`. */
  readonly source: string;
  /** `linux.resources.cpu.cpus` or `.mems`. */
  readonly field: string;
  readonly value: string | undefined;
}

/** Union of the given cpusets as ascending CPU numbers (empty when none sets one). */
export function collectSandboxCpuset(sets: readonly CpusetSource[]): Result<number[], PlanError> {
  const union = new Set<number>();
  const problems: Problem[] = [];
  for (const s of sets) {
    if (s.value === undefined || s.value === '') continue;
    const parsed = call((n) => n.parseCpuset(s.value!));
    if (parsed.isErr())
      problems.push(problem('spec', s.source, s.field, s.value, parsed.error.message));
    else parsed.value.forEach((cpu) => union.add(cpu));
  }
  if (problems.length > 0) return err(planError(...problems));
  return ok([...union].sort((a, b) => a - b));
}

/** Canonical cpuset text: ascending, runs as ranges (`[0,1,2,5]` → `0-2,5`). */
export function formatCpuset(cpus: readonly number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/**
 * vCPU pinning: vCPU thread i (sorted by vCPU index) → the i-th CPU of the sandbox cpuset, but
 * only when there are exactly as many vCPU threads as CPUs; otherwise no pinning (null).
 */
export function planVcpuPinning(vcpuThreads: number, cpuset: readonly number[]): number[] | null {
  return vcpuThreads > 0 && vcpuThreads === cpuset.length ? [...cpuset] : null;
}
