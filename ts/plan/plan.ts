// The planner: `config + OCI specs + host facts → ResourcePlan`. Pure and synchronous: it reads
// nothing and starts nothing; applying the plan is a separate layer.
import { posix } from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { KataConfig } from '../config/kata-config.js';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import type { HostPath } from '../paths.js';
import {
  applyConfigAnnotations,
  CC_INIT_DATA_ANNOTATION,
  HYPERVISOR_PREFIX,
} from '../spec/annotations.js';
import { containerType, type ContainerType } from '../spec/container-type.js';
import type { OciSpec } from '../spec/oci-spec.js';
import { BlockDevicePlanner } from './devices.js';
import { planCgroups } from './cgroups.js';
import { collectSandboxCpuset, formatCpuset } from './cpuset.js';
import { pathFact, type HostFacts } from './host-facts.js';
import { planHostDirs, planRootlessContext, type HostDirs } from './host-dirs.js';
import { planInitdata } from './initdata.js';
import { planPorts } from './ports.js';
import type { BundleInput, ContainerPlan, PlanInput, ResourcePlan } from './plan-types.js';
import { planSizing, staticRequestFrom, type ContainerLimits } from './sizing.js';
import {
  containerRequestJson,
  createContainerRequest,
  createSandboxRequest,
  sandboxRequestJson,
  sharedFsStorages,
} from './requests.js';
import { containerBlockDevices } from './container-devices.js';
import { forceGuestPullEnabled, planRootfs } from './rootfs.js';
import { sandboxShmSize, sandboxShmStorage } from './shm.js';
import { VolumeManager } from './volume-manager.js';
import { planVolumes } from './volumes.js';
import { sequentialHex, type RandomHex } from './volumes-paths.js';
import { SharedFsVolumes } from './volumes-shared-fs.js';

export type {
  BundleInput,
  ContainerPlan,
  PlanInput,
  ResourcePlan,
  SharedDirs,
} from './plan-types.js';

/** containerd's id rule; ids become host path components and cgroup names. */
const ID_PATTERN = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const MAX_ID_LENGTH = 128;

function checkIds(input: PlanInput): Problem[] {
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const b of [input.sandbox, ...input.containers]) {
    if (!ID_PATTERN.test(b.id) || b.id.length > MAX_ID_LENGTH) {
      problems.push(
        problem(
          'plan',
          b.bundleDir,
          'id',
          b.id,
          `invalid id ${JSON.stringify(b.id)}: letters, digits and inner . _ - only, at most ${MAX_ID_LENGTH} characters`,
        ),
      );
    } else if (seen.has(b.id)) {
      problems.push(
        problem('plan', b.bundleDir, 'id', b.id, `duplicate container id ${JSON.stringify(b.id)}`),
      );
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

/** Sandbox-wide state the containers share while they are planned in order. */
interface SandboxState {
  readonly config: KataConfig;
  readonly sandboxId: string;
  readonly host: HostFacts;
  readonly devices: BlockDevicePlanner;
  readonly copies: VolumeManager;
  readonly shared: SharedFsVolumes;
  readonly random: RandomHex;
  readonly hostDirs: HostDirs;
}

type ContainerParts = Omit<ContainerPlan, 'id' | 'type' | 'vcpusAfter' | 'memoryMiBAfter'>;

/** Rootfs, then volumes, then devices (runtime-rs `Container::create` order), then the request. */
function planContainer(
  b: BundleInput,
  type: ContainerType,
  s: SandboxState,
): Result<ContainerParts, PlanError> {
  const specSource = `${b.bundleDir}/config.json`;
  const bundlePath = b.bundlePath ?? b.bundleDir;
  const rootfs = planRootfs({
    containerId: b.id,
    sharedRw: s.hostDirs.sharedRw,
    bundlePath,
    rootPath: b.spec.root.path,
    mounts: b.rootfsMounts ?? [],
    mountsSource: `${b.bundleDir}/rootfs-mounts.json`,
    annotations: b.spec.annotations,
    sharedFs: s.config.hypervisor.sharedFs,
    forceGuestPull: forceGuestPullEnabled(s.config.runtime),
    host: s.host,
    devices: s.devices,
  });
  const volumes = planVolumes(b.spec, {
    specSource,
    containerId: b.id,
    sharedFs: s.config.hypervisor.sharedFs,
    kubeletRootDir: s.config.runtime.kubeletRootDir,
    allowAnyCopyDirectory: s.config.runtime.allowAnyCopyDirectory,
    host: s.host,
    devices: s.devices,
    copies: s.copies,
    shared: s.shared,
    random: s.random,
    hostDirs: s.hostDirs,
  });
  const devices = containerBlockDevices(b, s.host, s.devices);
  const problems = [
    ...(rootfs.isErr() ? [rootfs.error] : []),
    ...(volumes.isErr() ? volumes.error.problems : []),
    ...(devices.isErr() ? devices.error.problems : []),
  ];
  if (problems.length > 0) return err(planError(...problems));
  const r = rootfs._unsafeUnwrap();
  const v = volumes._unsafeUnwrap();
  const d = devices._unsafeUnwrap();
  const request = createContainerRequest({
    containerId: b.id,
    type,
    bundlePath,
    spec: b.spec,
    rootfsGuestPath: r.guestPath,
    rootfsStorages: r.storages,
    volumeStorages: v.storages,
    mounts: v.mounts,
    devices: d.agentDevices,
    guestSeccomp: !s.config.runtime.disableGuestSeccomp,
  });
  return ok({
    blockDevices: [...(r.blockDevice ? [r.blockDevice] : []), ...v.blockDevices, ...d.blocks],
    rootfs: r,
    volumes: b.spec.mounts.map((m, i) => ({ destination: m.destination, kind: v.kinds[i]! })),
    copies: v.copies,
    sharedFsBinds: v.sharedFsBinds,
    sharedMountPoints: [
      ...(r.sharedMountPoint ? [r.sharedMountPoint] : []),
      ...v.sharedMountPoints,
    ],
    createContainer: containerRequestJson(request),
  });
}

/** Canonical host paths from realpath facts; lexical normalization when there is none. */
function canonicalizer(host: HostFacts): (p: string) => string {
  return (p) => pathFact(host, p).realpath ?? posix.resolve('/', p);
}

/**
 * Rootless (config or its allowed annotation) with the dir from host facts, and the host dirs of
 * the sandbox below it. A problem names the setting that turned rootless on.
 */
function sandboxHostDirs(
  input: PlanInput,
  config: KataConfig,
  annotations: Readonly<Record<string, string>>,
): Result<{ rootlessDir: HostPath | null; hostDirs: HostDirs }, PlanError> {
  const h = config.hypervisor;
  const key = `${HYPERVISOR_PREFIX}rootless`;
  const origin =
    (annotations[key] ?? '') !== '' && h.rootless !== input.config.hypervisor.rootless
      ? { source: `${input.sandbox.bundleDir}/config.json`, field: key }
      : { source: input.configSource, field: `hypervisor.${h.name}.rootless` };
  const ctx = planRootlessContext(h.rootless, input.host.rootlessDir);
  if (ctx.isErr())
    return err(planError(problem('plan', origin.source, origin.field, h.rootless, ctx.error)));
  return planHostDirs(input.sandbox.id, ctx.value)
    .map((hostDirs) => ({ rootlessDir: ctx.value.rootless ? ctx.value.dir : null, hostDirs }))
    .mapErr((e) =>
      planError(problem('plan', input.sandbox.bundleDir, 'id', input.sandbox.id, e.message)),
    );
}

/** Plans a sandbox and its containers. */
export function plan(input: PlanInput): Result<ResourcePlan, PlanError> {
  const idProblems = checkIds(input);
  if (idProblems.length > 0) return err(planError(...idProblems));
  const sandboxSource = `${input.sandbox.bundleDir}/config.json`;
  const annotations = input.sandbox.spec.annotations;

  return applyConfigAnnotations(input.config, annotations, sandboxSource).andThen(
    ({ config, warnings }) => {
      const h = config.hypervisor;
      const sandboxType = containerType(annotations).type;
      const all = [input.sandbox, ...input.containers];

      const sizing = staticRequestFrom(
        sandboxType,
        annotations,
        limitsOf(input.sandbox.spec),
      ).andThen((staticRequest) =>
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
          all.map((b) => ({
            source: `${b.bundleDir}/config.json`,
            field: `linux.resources.cpu.${key}`,
            value: b.spec.linux.resources.cpu?.[key],
          })),
        );
      const cpuset = cpusetOf('cpus');
      const mems = cpusetOf('mems');
      // A bad cpuset also fails sizing; report it once, naming the spec field.
      const cpusetProblems = [cpuset, mems].flatMap((r) => (r.isErr() ? r.error.problems : []));
      if (cpusetProblems.length > 0) return err(planError(...cpusetProblems));
      // Report problems of independent sections together.
      const firstPass = [sizing, cgroups, ports].flatMap((r) =>
        r.isErr() ? r.error.problems : [],
      );
      if (firstPass.length > 0) return err(planError(...firstPass));

      const dirs = sandboxHostDirs(input, config, annotations);
      if (dirs.isErr()) return err(dirs.error);
      const { rootlessDir, hostDirs } = dirs.value;

      const devices = new BlockDevicePlanner(h, ports._unsafeUnwrap(), input.configSource);
      const fromAnnotation =
        (annotations[CC_INIT_DATA_ANNOTATION] ?? '') !== '' &&
        h.initdata !== input.config.hypervisor.initdata;
      const initdata = planInitdata(h, input.host.guestProtection, devices, input.sandbox.id, {
        origin: fromAnnotation
          ? { field: CC_INIT_DATA_ANNOTATION, source: sandboxSource }
          : { field: `hypervisor.${h.name}.initdata`, source: input.configSource },
        dir: hostDirs.initdata,
      });
      if (initdata.isErr()) return err(initdata.error);
      const coldplugDevices = devices.devices();

      const containers: ContainerPlan[] = [];
      const problems: Problem[] = [];
      const sized = sizing._unsafeUnwrap();
      const state: SandboxState = {
        config,
        sandboxId: input.sandbox.id,
        host: input.host,
        devices,
        copies: new VolumeManager(canonicalizer(input.host)),
        shared: new SharedFsVolumes(hostDirs),
        random: input.random ?? sequentialHex(),
        hostDirs,
      };
      all.forEach((b, i) => {
        const type = i === 0 ? sandboxType : containerType(b.spec.annotations).type;
        const parts = planContainer(b, type, state);
        if (parts.isErr()) {
          problems.push(...parts.error.problems);
          return;
        }
        const after = sized.containers[i]!;
        containers.push({
          id: b.id,
          type,
          vcpusAfter: after.vcpusAfter,
          memoryMiBAfter: after.memoryMiBAfter,
          ...parts.value,
        });
      });
      if (problems.length > 0) return err(planError(...problems));
      const shmSizeBytes = sandboxShmSize(input.sandbox.spec, input.host);

      return ok({
        sandboxId: input.sandbox.id,
        rootlessDir,
        hostDirs,
        vcpus: sized.vcpus,
        memoryMiB: sized.memoryMiB,
        maxMemoryMiB: sized.maxMemoryMiB,
        kernelParams: h.kernelParams,
        cgroups: {
          ...cgroups._unsafeUnwrap(),
          cpuset: formatCpuset(cpuset._unsafeUnwrap()),
          mems: formatCpuset(mems._unsafeUnwrap()),
        },
        ports: ports._unsafeUnwrap().ports,
        coldplugDevices,
        initdata: initdata.value,
        containers,
        warnings: [...warnings, ...ports._unsafeUnwrap().warnings],
        shmSizeBytes,
        copyVolumes: state.copies.volumes(),
        // virtio-fs: rw bound onto itself and shared, ro its read-only slave, exported by virtiofsd.
        sharedDirs:
          h.sharedFs === 'virtio-fs'
            ? { sandbox: hostDirs.sharedSandbox, rw: hostDirs.sharedRw, ro: hostDirs.sharedRo }
            : null,
        createSandbox: sandboxRequestJson(
          createSandboxRequest({
            sandboxId: input.sandbox.id,
            hostname: input.sandbox.spec.hostname ?? '',
            dns: [],
            storages: [...sharedFsStorages(h.sharedFs), sandboxShmStorage(shmSizeBytes)],
            guestHookPath: h.guestHookPath,
            kernelModules: config.agent.kernelModules,
          }),
        ),
      });
    },
  );
}
