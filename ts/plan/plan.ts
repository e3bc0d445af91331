// The planner: `config + OCI specs + host facts → ResourcePlan`. Pure and synchronous: it reads
// nothing and starts nothing; applying the plan is a separate layer.
import { err, ok, type Result } from 'neverthrow';
import type { KataConfig } from '../config/kata-config.js';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { hostPath } from '../paths.js';
import { applyConfigAnnotations, CC_INIT_DATA_ANNOTATION } from '../spec/annotations.js';
import { containerType, type ContainerType } from '../spec/container-type.js';
import type { OciSpec } from '../spec/oci-spec.js';
import { BlockDevicePlanner, type BlockDevice } from './devices.js';
import { planCgroups, type CgroupPlan } from './cgroups.js';
import { collectSandboxCpuset, formatCpuset } from './cpuset.js';
import type { HostFacts } from './host-facts.js';
import { planInitdata, type InitdataPlan } from './initdata.js';
import { planPorts, type Port } from './ports.js';
import { planSizing, staticRequestFrom, type ContainerLimits } from './sizing.js';

/** A container (or the sandbox's own container) as given: its id, bundle and parsed spec. */
export interface BundleInput {
  readonly id: string;
  readonly bundleDir: string;
  readonly spec: OciSpec;
}

export interface PlanInput {
  readonly config: KataConfig;
  /** Path of the configuration file, for errors. */
  readonly configSource: string;
  readonly sandbox: BundleInput;
  /** Further containers, in the order they are added. */
  readonly containers: readonly BundleInput[];
  readonly host: HostFacts;
}

export interface ContainerPlan {
  readonly id: string;
  readonly type: ContainerType;
  readonly vcpusAfter: number;
  readonly memoryMiBAfter: number;
  readonly blockDevices: readonly BlockDevice[];
}

export interface ResourcePlan {
  readonly sandboxId: string;
  readonly vcpus: { readonly boot: number; readonly max: number; readonly exact: string };
  readonly memoryMiB: number;
  readonly maxMemoryMiB: number;
  /** The cgroup plan plus the sandbox cpuset/mems (union of the containers', canonical; "" = unset). */
  readonly cgroups: CgroupPlan & { readonly cpuset: string; readonly mems: string };
  readonly ports: readonly Port[];
  readonly coldplugDevices: readonly BlockDevice[];
  readonly initdata: InitdataPlan | null;
  /** The sandbox's own container first, then the others in order. */
  readonly containers: readonly ContainerPlan[];
  readonly warnings: readonly string[];
}

/** containerd's id rule; ids become host path components and cgroup names. */
const ID_PATTERN = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_ID_LENGTH = 128;

function checkIds(input: PlanInput): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const b of [input.sandbox, ...input.containers]) {
    if (!ID_PATTERN.test(b.id) || b.id.length > MAX_ID_LENGTH) {
      problems.push(problem('plan', b.bundleDir, 'id', b.id, `invalid id ${JSON.stringify(b.id)}: letters, digits and inner . _ - only, at most ${MAX_ID_LENGTH} characters`));
    } else if (seen.has(b.id)) {
      problems.push(problem('plan', b.bundleDir, 'id', b.id, `duplicate container id ${JSON.stringify(b.id)}`));
    }
    seen.add(b.id);
  }
  return problems;
}

function limitsOf(spec: OciSpec): ContainerLimits {
  const cpu = spec.linux.resources.cpu;
  const memory = spec.linux.resources.memory;
  return {
    ...(cpu?.quota !== undefined ? { quotaUs: cpu.quota } : {}),
    ...(cpu?.period !== undefined ? { periodUs: cpu.period } : {}),
    ...(cpu?.cpus !== undefined ? { cpus: cpu.cpus } : {}),
    ...(memory?.limit !== undefined ? { memoryLimitBytes: memory.limit } : {}),
  };
}

/** Block devices of `linux.devices` (type `b`), resolved through host facts by major:minor. */
function containerBlockDevices(b: BundleInput, host: HostFacts, devices: BlockDevicePlanner): Result<BlockDevice[], PlanError> {
  const out: BlockDevice[] = [];
  const problems: Problem[] = [];
  b.spec.linux.devices.forEach((d, i) => {
    if (d.type !== 'b') return;
    const field = `linux.devices[${i}]`;
    const fact = host.blockDevices[`${d.major}:${d.minor}`];
    if (!fact) {
      problems.push(problem('spec', `${b.bundleDir}/config.json`, field, d.path, `no host block device ${d.major}:${d.minor} for ${d.path}`));
      return;
    }
    const path = hostPath(fact.path);
    if (path.isErr()) {
      problems.push(problem('spec', `${b.bundleDir}/config.json`, field, fact.path, path.error.message));
      return;
    }
    const dev = devices.allocate({ pathOnHost: path.value, readOnly: fact.readOnly, hotplug: true });
    if (dev.isErr()) {
      for (const p of dev.error.problems) {
        problems.push(problem('spec', `${b.bundleDir}/config.json`, field, fact.path, `cannot attach ${fact.path}: ${p.message}`));
      }
    }
    else out.push(dev.value);
  });
  return problems.length > 0 ? err(planError(...problems)) : ok(out);
}

/** Plans a sandbox and its containers. */
export function plan(input: PlanInput): Result<ResourcePlan, PlanError> {
  const idProblems = checkIds(input);
  if (idProblems.length > 0) return err(planError(...idProblems));
  const sandboxSource = `${input.sandbox.bundleDir}/config.json`;
  const annotations = input.sandbox.spec.annotations;

  return applyConfigAnnotations(input.config, annotations, sandboxSource).andThen(({ config, warnings }) => {
    const h = config.hypervisor;
    const sandboxType = containerType(annotations).type;
    const all = [input.sandbox, ...input.containers];

    const sizing = staticRequestFrom(sandboxType, annotations, limitsOf(input.sandbox.spec)).andThen((staticRequest) =>
      planSizing({
        defaultVcpus: h.defaultVcpus,
        overheadVcpus: h.overheadVcpus,
        defaultMaxVcpus: h.defaultMaxVcpus,
        defaultMemoryMiB: h.defaultMemoryMiB,
        overheadMemoryMiB: h.overheadMemoryMiB,
        defaultMaxMemoryMiB: h.defaultMaxMemoryMiB,
        staticSandboxResourceMgmt: config.runtime.staticSandboxResourceMgmt,
        hostCpus: input.host.hostCpus,
        hostMemoryMiB: input.host.hostMemoryMiB,
        staticRequest,
        containers: all.map((b) => ({ id: b.id, limits: limitsOf(b.spec) })),
      }),
    );
    const cgroups = planCgroups({
      sandboxId: input.sandbox.id,
      cgroupsPath: input.sandbox.spec.linux.cgroupsPath,
      sandboxCgroupOnly: config.runtime.sandboxCgroupOnly,
      version: input.host.cgroupVersion,
      source: sandboxSource,
    });
    const ports = planPorts(h, input.configSource);
    const cpusetOf = (key: 'cpus' | 'mems') =>
      collectSandboxCpuset(
        all.map((b) => ({ source: `${b.bundleDir}/config.json`, field: `linux.resources.cpu.${key}`, value: b.spec.linux.resources.cpu?.[key] })),
      );
    const cpuset = cpusetOf('cpus');
    const mems = cpusetOf('mems');
    // A bad cpuset also fails sizing; report it once, naming the spec field.
    const cpusetProblems = [cpuset, mems].flatMap((r) => (r.isErr() ? r.error.problems : []));
    if (cpusetProblems.length > 0) return err(planError(...cpusetProblems));
    // Report problems of independent sections together.
    const firstPass = [sizing, cgroups, ports].flatMap((r) => (r.isErr() ? r.error.problems : []));
    if (firstPass.length > 0) return err(planError(...firstPass));

    const devices = new BlockDevicePlanner(h, ports._unsafeUnwrap(), input.configSource);
    const fromAnnotation = (annotations[CC_INIT_DATA_ANNOTATION] ?? '') !== '' && h.initdata !== input.config.hypervisor.initdata;
    const initdata = planInitdata(h, input.host.guestProtection, devices, input.sandbox.id, {
      origin: fromAnnotation
        ? { field: CC_INIT_DATA_ANNOTATION, source: sandboxSource }
        : { field: `hypervisor.${h.name}.initdata`, source: input.configSource },
    });
    if (initdata.isErr()) return err(initdata.error);
    const coldplugDevices = devices.devices();

    const containers: ContainerPlan[] = [];
    const problems: Problem[] = [];
    const sized = sizing._unsafeUnwrap();
    all.forEach((b, i) => {
      const blocks = containerBlockDevices(b, input.host, devices);
      if (blocks.isErr()) problems.push(...blocks.error.problems);
      const after = sized.containers[i]!;
      containers.push({
        id: b.id,
        type: i === 0 ? sandboxType : containerType(b.spec.annotations).type,
        vcpusAfter: after.vcpusAfter,
        memoryMiBAfter: after.memoryMiBAfter,
        blockDevices: blocks.unwrapOr([]),
      });
    });
    if (problems.length > 0) return err(planError(...problems));

    return ok({
      sandboxId: input.sandbox.id,
      vcpus: sized.vcpus,
      memoryMiB: sized.memoryMiB,
      maxMemoryMiB: sized.maxMemoryMiB,
      cgroups: { ...cgroups._unsafeUnwrap(), cpuset: formatCpuset(cpuset._unsafeUnwrap()), mems: formatCpuset(mems._unsafeUnwrap()) },
      ports: ports._unsafeUnwrap().ports,
      coldplugDevices,
      initdata: initdata.value,
      containers,
      warnings: [...warnings, ...ports._unsafeUnwrap().warnings],
    });
  });
}
