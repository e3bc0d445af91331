// `io.katacontainers.config.*` annotations overriding configuration.toml, with Kata's rules
// (kata-types annotations/mod.rs `update_config_by_annotation`): a hypervisor key applies only
// when `enable_annotations` enables it; agent and runtime keys always apply. Every invalid value
// is reported; keys that do not apply are warnings.
import { err, ok, type Result } from 'neverthrow';
import * as rules from '../config/config-rules.js';
import type {
  AgentConfig,
  HypervisorConfig,
  KataConfig,
  RuntimeConfig,
} from '../config/kata-config.js';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { clipValue } from '../input/escape-text.js';
import { MAX_ANNOTATION_VALUE_BYTES } from '../input/limits.js';
import {
  annotationVcpus,
  decodeInitdataAnnotation,
  globToRegExp,
  kernelParamsText,
  parseBool,
  parseMemoryMiB,
  parseU32,
  replaceKernelParams,
} from './annotation-values.js';

export {
  decodeInitdataAnnotation,
  globToRegExp,
  MAX_INITDATA_BYTES,
  parseMemoryMiB,
  replaceKernelParams,
} from './annotation-values.js';

export const KATA_CONFIG_PREFIX = 'io.katacontainers.config.';
export const HYPERVISOR_PREFIX = 'io.katacontainers.config.hypervisor.';
export const AGENT_PREFIX = 'io.katacontainers.config.agent.';
export const RUNTIME_PREFIX = 'io.katacontainers.config.runtime.';
/** base64(gzip(initdata TOML)); decoded into `hypervisor.initdata`. */
export const CC_INIT_DATA_ANNOTATION = 'io.katacontainers.config.hypervisor.cc_init_data';

/** Annotations removed from the container spec before it is sent to the agent. */
export const STRIPPED_ANNOTATIONS: readonly string[] = [CC_INIT_DATA_ANNOTATION];

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
interface Draft {
  readonly hv: Mutable<HypervisorConfig>;
  readonly agent: Mutable<AgentConfig>;
  readonly runtime: Mutable<RuntimeConfig>;
}
type Apply = (value: string, draft: Draft) => rules.Rule<void>;

const setBool =
  (set: (d: Draft, v: boolean) => void): Apply =>
  (value, d) =>
    parseBool(value).map((v) => set(d, v));
const setU32 =
  (set: (d: Draft, v: number) => void): Apply =>
  (value, d) =>
    parseU32(value).map((v) => set(d, v));
const setRule =
  <T>(rule: (v: string) => rules.Rule<T>, set: (d: Draft, v: T) => void): Apply =>
  (value, d) =>
    rule(value).map((v) => set(d, v));

function allowedPath(d: Draft, value: string): rules.Rule<void> {
  const patterns = d.hv.validHypervisorPaths.map(globToRegExp);
  if (patterns.some((p) => p.isOk() && p.value.test(value))) return ok(undefined);
  const invalid = patterns.flatMap((p) => (p.isErr() ? [`; ${p.error}`] : [])).join('');
  return err(
    `${clipValue(value)} is not allowed by valid_hypervisor_paths [${d.hv.validHypervisorPaths.join(', ')}]${invalid}`,
  );
}

const HYPERVISOR_KEYS: Readonly<Record<string, Apply>> = {
  path: (v, d) => allowedPath(d, v).map(() => void (d.hv.path = v)),
  kernel: setRule(rules.absolutePath, (d, v) => (d.hv.kernel = v)),
  image: setRule(rules.absolutePath, (d, v) => (d.hv.image = v)),
  initrd: setRule(rules.absolutePath, (d, v) => (d.hv.initrd = v)),
  firmware: setRule(rules.absolutePath, (d, v) => (d.hv.firmware = v)),
  kernel_params: setRule(
    kernelParamsText,
    (d, v) => (d.hv.kernelParams = replaceKernelParams(d.hv.kernelParams, v)),
  ),
  machine_type: (v, d) => ok(void (d.hv.machineType = v)),
  machine_accelerators: (v, d) => ok(void (d.hv.machineAccelerators = v)),
  cpu_features: (v, d) => ok(void (d.hv.cpuFeatures = v)),
  default_vcpus: setRule(annotationVcpus, (d, v) => (d.hv.defaultVcpus = v)),
  default_max_vcpus: setRule(
    (v) => parseU32(v).andThen(rules.maxVcpus),
    (d, v) => (d.hv.defaultMaxVcpus = v),
  ),
  default_memory: setRule(parseMemoryMiB, (d, v) => (d.hv.defaultMemoryMiB = v)),
  memory_slots: setU32((d, v) => (d.hv.memorySlots = v)),
  block_device_driver: setRule(rules.blockDriver, (d, v) => (d.hv.blockDeviceDriver = v)),
  block_device_aio: setRule(rules.blockAio, (d, v) => (d.hv.blockDeviceAio = v)), // runtime-go only
  disable_block_device_use: setBool((d, v) => (d.hv.disableBlockDeviceUse = v)),
  block_device_cache_set: setBool((d, v) => (d.hv.blockDeviceCacheSet = v)),
  block_device_cache_direct: setBool((d, v) => (d.hv.blockDeviceCacheDirect = v)),
  block_device_cache_noflush: setBool((d, v) => (d.hv.blockDeviceCacheNoflush = v)),
  pcie_root_port: setU32((d, v) => (d.hv.pcieRootPort = v)),
  pcie_switch_port: setU32((d, v) => (d.hv.pcieSwitchPort = v)),
  hot_plug_vfio: setRule(rules.vfioPort, (d, v) => (d.hv.hotplugVfio = v)), // runtime-go
  cold_plug_vfio: setRule(rules.vfioPort, (d, v) => (d.hv.coldplugVfio = v)), // runtime-go
  guest_hook_path: setRule(rules.absolutePath, (d, v) => (d.hv.guestHookPath = v)),
  rootless: setBool((d, v) => (d.hv.rootless = v)),
  shared_fs: setRule(
    (v) => rules.sharedFs(v.trim()),
    (d, v) => (d.hv.sharedFs = v),
  ),
  virtio_fs_cache: setRule(rules.virtioFsCache, (d, v) => (d.hv.virtioFsCache = v)),
  virtio_fs_cache_size: setU32((d, v) => (d.hv.virtioFsCacheSizeMiB = v)),
  virtio_fs_extra_args: (v, d) =>
    ok(void (d.hv.virtioFsExtraArgs = [...d.hv.virtioFsExtraArgs, ...v.split(',')])),
  cc_init_data: setRule(decodeInitdataAnnotation, (d, v) => (d.hv.initdata = v)),
};

// Hypervisor annotations Kata knows that have no counterpart in KataConfig (or whose allowlist
// kata-ts does not keep, like virtio_fs_daemon and entropy_source): accepted, not applied.
const IGNORED_HYPERVISOR_KEYS: ReadonlySet<string> = new Set([
  'path_hash',
  'ctlpath',
  'hypervisorctl_hash',
  'jailer_path',
  'jailer_hash',
  'enable_iothreads',
  'asset_hash_type',
  'disable_image_nvdimm',
  'memory_offset',
  'enable_vhost_user_store',
  'vhost_user_store_path',
  'kernel_hash',
  'image_hash',
  'initrd_hash',
  'firmware_hash',
  'kernel_verity_params',
  'hotplug_vfio_on_root_bus',
  'enable_iommu',
  'enable_iommu_platform',
  'entropy_source',
  'prefetch_files.list',
  'enable_mem_prealloc',
  'enable_hugepages',
  'hugepage_type',
  'file_mem_backend',
  'enable_virtio_mem',
  'enable_swap',
  'enable_guest_swap',
  'disable_vhost_net',
  'rx_rate_limiter_max_rate',
  'tx_rate_limiter_max_rate',
  'virtio_fs_daemon',
  'msize_9p',
]);

const AGENT_KEYS: Readonly<Record<string, Apply>> = {
  // `;`-separated, appended (kata-types); blank entries are dropped.
  kernel_modules: (v, d) =>
    ok(
      void (d.agent.kernelModules = [
        ...d.agent.kernelModules,
        ...v
          .split(';')
          .map((m) => m.trim())
          .filter((m) => m !== ''),
      ]),
    ),
  enable_tracing: setBool((d, v) => (d.agent.enableTracing = v)),
};

const RUNTIME_KEYS: Readonly<Record<string, Apply>> = {
  disable_guest_seccomp: setBool((d, v) => (d.runtime.disableGuestSeccomp = v)),
  enable_pprof: setBool((d, v) => (d.runtime.enablePprof = v)),
  // `,`-separated, appended (kata-types).
  experimental: (v, d) =>
    ok(void (d.runtime.experimental = [...d.runtime.experimental, ...v.split(',')])),
  experimental_force_guest_pull: setBool((d, v) => (d.runtime.experimentalForceGuestPull = v)), // runtime-go
  internetworking_model: setRule(
    rules.internetworkingModel,
    (d, v) => (d.runtime.internetworkingModel = v),
  ),
  sandbox_cgroup_only: setBool((d, v) => (d.runtime.sandboxCgroupOnly = v)),
  disable_new_netns: setBool((d, v) => (d.runtime.disableNewNetns = v)),
  vfio_mode: setRule(rules.vfioMode, (d, v) => (d.runtime.vfioMode = v)),
};

const IGNORED_OTHER_KEYS: ReadonlySet<string> = new Set([
  `${AGENT_PREFIX}container_pipe_size`,
  `${RUNTIME_PREFIX}name`,
  `${RUNTIME_PREFIX}hypervisor_name`,
  `${RUNTIME_PREFIX}agent_name`,
]);

/** Any annotation value is checked against MAX_ANNOTATION_VALUE_BYTES before it is parsed. */
function withinCap(value: string): rules.Rule<string> {
  const bytes = Buffer.byteLength(value);
  if (bytes <= MAX_ANNOTATION_VALUE_BYTES) return ok(value);
  return err(
    `value of ${bytes} bytes is larger than ${MAX_ANNOTATION_VALUE_BYTES} bytes (MAX_ANNOTATION_VALUE_BYTES)`,
  );
}

/**
 * Applies the spec's `io.katacontainers.config.*` annotations to `config`. `source` names the
 * spec in problems; each problem's field is the annotation key.
 */
export function applyConfigAnnotations(
  config: KataConfig,
  annotations: Readonly<Record<string, string>>,
  source: string,
): Result<{ config: KataConfig; warnings: string[] }, PlanError> {
  const draft: Draft = {
    hv: { ...config.hypervisor },
    agent: { ...config.agent },
    runtime: { ...config.runtime },
  };
  const problems: Problem[] = [];
  const warnings: string[] = [];
  const enabled = `hypervisor.${config.hypervisor.name}.enable_annotations`;
  const keys = Object.keys(annotations)
    .filter((k) => k.startsWith(KATA_CONFIG_PREFIX))
    .sort();
  for (const key of keys) {
    const value = annotations[key] ?? '';
    const apply = (fn: Apply | undefined): void => {
      const result =
        fn === undefined
          ? err(`Invalid annotation type ${key}`)
          : withinCap(value).andThen((v) => fn(v, draft));
      if (result.isErr())
        problems.push(problem('annotation', source, key, clipValue(value), result.error));
    };
    if (key.startsWith(HYPERVISOR_PREFIX)) {
      const name = key.slice(HYPERVISOR_PREFIX.length);
      if (!rules.annotationEnabled(config.hypervisor.enableAnnotations, name)) {
        warnings.push(`annotation ${key} ignored: not enabled by ${enabled}`);
      } else if (IGNORED_HYPERVISOR_KEYS.has(name)) {
        warnings.push(`annotation ${key} ignored: not supported by kata-ts`);
      } else {
        apply(Object.hasOwn(HYPERVISOR_KEYS, name) ? HYPERVISOR_KEYS[name] : undefined);
      }
    } else if (
      key.startsWith(AGENT_PREFIX) &&
      Object.hasOwn(AGENT_KEYS, key.slice(AGENT_PREFIX.length))
    ) {
      apply(AGENT_KEYS[key.slice(AGENT_PREFIX.length)]);
    } else if (
      key.startsWith(RUNTIME_PREFIX) &&
      Object.hasOwn(RUNTIME_KEYS, key.slice(RUNTIME_PREFIX.length))
    ) {
      apply(RUNTIME_KEYS[key.slice(RUNTIME_PREFIX.length)]);
    } else {
      warnings.push(
        `annotation ${key} ignored: ${IGNORED_OTHER_KEYS.has(key) ? 'not supported by kata-ts' : 'not enabled'}`,
      );
    }
  }
  const portKeys = [`${HYPERVISOR_PREFIX}pcie_root_port`, `${HYPERVISOR_PREFIX}pcie_switch_port`];
  const ports = rules.pciePorts(draft.hv.pcieRootPort, draft.hv.pcieSwitchPort);
  if (ports.isErr() && portKeys.some((k) => keys.includes(k))) {
    const key = `${HYPERVISOR_PREFIX}pcie_switch_port`;
    problems.push(problem('annotation', source, key, String(draft.hv.pcieSwitchPort), ports.error));
  }
  if (problems.length > 0) return err(planError(...problems));
  return ok({
    config: { hypervisor: draft.hv, agent: draft.agent, runtime: draft.runtime },
    warnings,
  });
}
