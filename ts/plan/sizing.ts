// vCPU and memory sizing of a sandbox (behaviour.md feature 1; reference cpu_mem/cpu.rs and
// cpu_mem/initial_size.rs). Exact arithmetic is the native `calcSandboxVcpus`; this file holds
// the policy: boot/max counts, add-never-shrinks, and static sizing from annotations.
import { err, ok, type Result } from 'neverthrow';
import { problem, planError, type PlanError } from '../errors.js';
import { call, type NativeAddon } from '../native.js';

type VcpuAmount = ReturnType<NativeAddon['calcSandboxVcpus']>;

/** CPU and memory limits of one container, as read from its OCI spec (or sandbox annotations). */
export interface ContainerLimits {
  readonly quotaUs?: number;
  readonly periodUs?: number;
  readonly cpus?: string;
  /** Memory limit in bytes; absent or ≤ 0 means none. */
  readonly memoryLimitBytes?: number;
}

export interface SizingInput {
  readonly defaultVcpus: string;
  readonly overheadVcpus: string;
  readonly defaultMaxVcpus: number;
  readonly defaultMemoryMiB: number;
  readonly overheadMemoryMiB: number;
  readonly defaultMaxMemoryMiB: number;
  readonly staticSandboxResourceMgmt: boolean;
  /** Host facts. */
  readonly hostCpus: number;
  readonly hostMemoryMiB: number;
  /** Static sizing request: sandbox annotations (pod) or the single container's limits. */
  readonly staticRequest: ContainerLimits | null;
  /** Containers in the order they are added. */
  readonly containers: readonly { readonly id: string; readonly limits: ContainerLimits }[];
}

export interface SizingPlan {
  readonly vcpus: { readonly boot: number; readonly max: number; readonly exact: string };
  readonly memoryMiB: number;
  readonly maxMemoryMiB: number;
  readonly containers: readonly {
    readonly id: string;
    readonly vcpusAfter: number;
    readonly memoryMiBAfter: number;
  }[];
}

const MIB = 1024 * 1024;

function nativeErr(field: string, value: unknown, message: string): PlanError {
  return planError(problem('sizing', 'config', field, value, message));
}

function vcpus(
  defaultText: string,
  containers: readonly ContainerLimits[],
  field: string,
): Result<VcpuAmount, PlanError> {
  return call((n) =>
    n.calcSandboxVcpus(
      defaultText,
      containers.map(({ quotaUs, periodUs, cpus }) => ({ quotaUs, periodUs, cpus })),
    ),
  ).mapErr((e) => nativeErr(field, defaultText, e.message));
}

function vcpusAfterEach(input: SizingInput): Result<readonly VcpuAmount[], PlanError> {
  const containers = input.containers.map(({ limits: { quotaUs, periodUs, cpus } }) => ({
    quotaUs,
    periodUs,
    cpus,
  }));
  return call((n) => n.calcSandboxVcpusAfterEach(input.defaultVcpus, containers)).mapErr((e) => {
    // The message names the offending cpuset or quota; find which container it belongs to.
    const culprit = input.containers.find((c) =>
      call((n) => n.calcSandboxVcpus('0', [c.limits])).isErr(),
    );
    return nativeErr(
      `containers[${culprit?.id ?? '?'}].linux.resources.cpu`,
      input.defaultVcpus,
      e.message,
    );
  });
}

/** Whole vCPUs for an exact amount: at least one (runtime-rs HEAD: `ceil(max(x, 1.0))`). */
export function wholeVcpus(amount: VcpuAmount): number {
  return Math.max(amount.ceil, 1);
}

/**
 * Next vCPU count after a container change: add never shrinks, remove never grows (reference
 * `do_update_cpu_resources`), and the count stays within [1, max].
 */
export function resizeVcpus(
  current: number,
  wanted: number,
  op: 'add' | 'remove',
  max: number,
): number {
  const next = op === 'add' ? Math.max(current, wanted) : Math.min(current, wanted);
  return Math.min(Math.max(next, 1), max);
}

/** Memory in MiB from a byte limit, rounded up to an even number (reference initial_size.rs). */
export function memoryMiBFromBytes(bytes: number): number {
  const mib = Math.ceil(bytes / MIB);
  return mib % 2 === 0 ? mib : mib + 1;
}

function limitMiB(limits: ContainerLimits): number {
  return limits.memoryLimitBytes !== undefined && limits.memoryLimitBytes > 0
    ? Math.ceil(limits.memoryLimitBytes / MIB)
    : 0;
}

/** The exact vCPUs a static request asks for (0 when none). */
function requestedVcpus(request: ContainerLimits): Result<VcpuAmount | null, PlanError> {
  if (
    request.quotaUs === undefined ||
    request.periodUs === undefined ||
    request.quotaUs <= 0 ||
    request.periodUs <= 0
  )
    return ok(null);
  return call((n) =>
    n.calcContainerVcpus({ quotaUs: request.quotaUs, periodUs: request.periodUs }),
  ).mapErr((e) => nativeErr('io.kubernetes.cri.sandbox-cpu-quota', request.quotaUs, e.message));
}

interface StaticSizing {
  /** Exact boot vCPUs as `p/q`. */
  readonly defaultVcpus: string;
  readonly maxVcpus: number | null;
  readonly memoryMiB: number;
  readonly maxMemoryMiB: number;
}

/**
 * `static_sandbox_resource_mgmt`: size the VM once from the request, as `InitialSizeManager`
 * does: vCPUs = max(overhead + requested, 1), max vCPUs = ceil of that, memory = overhead +
 * requested (rounded to even MiB), max memory raised to at least the memory.
 */
export function staticSizing(input: SizingInput): Result<StaticSizing, PlanError> {
  const request = input.staticRequest ?? {};
  return requestedVcpus(request).andThen((asked) => {
    const memAsked =
      request.memoryLimitBytes !== undefined && request.memoryLimitBytes > 0
        ? memoryMiBFromBytes(request.memoryLimitBytes)
        : 0;
    if (!asked && memAsked === 0) {
      return vcpus(input.defaultVcpus, [], 'hypervisor.qemu.default_vcpus').map((d) => ({
        defaultVcpus: d.exact,
        maxVcpus: wholeVcpus(d),
        memoryMiB: input.defaultMemoryMiB,
        maxMemoryMiB: input.defaultMaxMemoryMiB,
      }));
    }
    const memoryMiB = input.overheadMemoryMiB + memAsked;
    if (memoryMiB === 0) {
      return err(
        nativeErr(
          'hypervisor.qemu.overhead_memory',
          0,
          'computed sandbox memory is 0 MiB: the request has no memory limit and overhead_memory is 0; set default_memory/overhead_memory or a memory limit',
        ),
      );
    }
    const containers = asked ? [{ quotaUs: request.quotaUs, periodUs: request.periodUs }] : [];
    return vcpus(input.overheadVcpus, containers, 'hypervisor.qemu.overhead_vcpus').map((total) => {
      // With no CPU request calcSandboxVcpus gives the overhead alone; the floor is 1 vCPU.
      const below1 = BigInt(total.numerator) < BigInt(total.denominator);
      const exact = below1 ? '1/1' : total.exact;
      return {
        defaultVcpus: exact,
        maxVcpus: below1 ? 1 : total.ceil,
        memoryMiB,
        maxMemoryMiB: Math.max(input.defaultMaxMemoryMiB, memoryMiB),
      };
    });
  });
}

/** Sizes the sandbox: boot and max vCPUs, memory, and the counts after each container is added. */
export function planSizing(input: SizingInput): Result<SizingPlan, PlanError> {
  const base: Result<StaticSizing | null, PlanError> = input.staticSandboxResourceMgmt
    ? staticSizing(input)
    : ok(null);
  return base.andThen((fixed) => {
    // default_maxvcpus 0 (or above the host) means the host's CPU count, as Kata's adjust_config;
    // static sizing sets the maximum to the request, which may overcommit the host.
    const hostMax = Math.max(input.hostCpus, 1);
    const max =
      fixed?.maxVcpus ??
      (input.defaultMaxVcpus > 0 ? Math.min(input.defaultMaxVcpus, hostMax) : hostMax);
    const bootExact: Result<{ exact: string; ceil: number }, PlanError> = fixed
      ? ok(staticExact(fixed.defaultVcpus))
      : vcpus(input.defaultVcpus, [], 'hypervisor.qemu.default_vcpus').map((a) => ({
          exact: a.exact,
          ceil: a.ceil,
        }));
    return bootExact.andThen((boot) => {
      const bootCount = Math.min(Math.max(boot.ceil, 1), max);
      const memoryMiB = fixed?.memoryMiB ?? input.defaultMemoryMiB;
      const maxMemoryMiB =
        (fixed?.maxMemoryMiB ?? input.defaultMaxMemoryMiB) || input.hostMemoryMiB;
      // Exact vCPUs after each addition, in one native pass (not one call per prefix).
      const totals: Result<readonly VcpuAmount[], PlanError> = fixed
        ? ok([])
        : vcpusAfterEach(input);
      if (totals.isErr()) return err(totals.error);
      const after: { id: string; vcpusAfter: number; memoryMiBAfter: number }[] = [];
      let current = bootCount;
      let memory = memoryMiB;
      let containerMemory = 0;
      input.containers.forEach((c, i) => {
        if (!fixed) {
          current = resizeVcpus(current, wholeVcpus(totals.value[i]!), 'add', max);
          containerMemory += limitMiB(c.limits);
          // Capped by the maximum but never below what the VM has: when the boot memory is already
          // above the maximum (default_memory over a small host), adding a container must not
          // shrink it (runtime-rs resize_memory cannot unplug).
          memory = Math.max(
            memory,
            Math.min(input.defaultMemoryMiB + containerMemory, maxMemoryMiB),
          );
        }
        after.push({ id: c.id, vcpusAfter: current, memoryMiBAfter: memory });
      });
      return ok({
        vcpus: { boot: bootCount, max, exact: boot.exact },
        memoryMiB,
        maxMemoryMiB,
        containers: after,
      });
    });
  });
}

function staticExact(pq: string): { exact: string; ceil: number } {
  const [p, q] = pq.split('/');
  const n = BigInt(p!);
  const d = BigInt(q!);
  return { exact: pq, ceil: Number((n + d - 1n) / d) };
}

export const SANDBOX_CPU_QUOTA = 'io.kubernetes.cri.sandbox-cpu-quota';
export const SANDBOX_CPU_PERIOD = 'io.kubernetes.cri.sandbox-cpu-period';
export const SANDBOX_MEMORY = 'io.kubernetes.cri.sandbox-memory';

function annotationInt(
  annotations: Readonly<Record<string, string>>,
  key: string,
): Result<number | undefined, PlanError> {
  const text = annotations[key];
  if (text === undefined || text === '') return ok(undefined);
  if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
    return err(
      planError(
        problem(
          'annotation',
          'sandbox spec',
          key,
          text,
          `expected an integer, got ${JSON.stringify(text)}`,
        ),
      ),
    );
  }
  return ok(Number(text));
}

/**
 * What static sizing sizes for (reference initial_size.rs): a pod sandbox's CRI annotations, or a
 * single container's own limits.
 */
export function staticRequestFrom(
  type: 'pod_sandbox' | 'pod_container' | 'single_container',
  annotations: Readonly<Record<string, string>>,
  ownLimits: ContainerLimits,
): Result<ContainerLimits | null, PlanError> {
  if (type === 'single_container') return ok(ownLimits);
  if (type !== 'pod_sandbox') return ok(null);
  const quota = annotationInt(annotations, SANDBOX_CPU_QUOTA);
  const period = annotationInt(annotations, SANDBOX_CPU_PERIOD);
  const memory = annotationInt(annotations, SANDBOX_MEMORY);
  const problems = [quota, period, memory].flatMap((r) => (r.isErr() ? r.error.problems : []));
  if (problems.length > 0) return err(planError(...problems));
  return ok({
    quotaUs: quota._unsafeUnwrap(),
    periodUs: period._unsafeUnwrap(),
    memoryLimitBytes: memory._unsafeUnwrap(),
  });
}
