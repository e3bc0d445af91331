// `io.katacontainers.config.*` annotations overriding configuration.toml, with Kata's rules
// (kata-types annotations/mod.rs `update_config_by_annotation`): a hypervisor key applies only
// when `enable_annotations` enables it; agent and runtime keys always apply. Every invalid value
// is reported; keys that do not apply are warnings.
import { gunzipSync } from 'node:zlib';
import { err, ok, type Result } from 'neverthrow';
import { MAX_QEMU_VCPUS } from '../config/config-defaults.js';
import * as rules from '../config/config-rules.js';
import type { AgentConfig, HypervisorConfig, KataConfig, RuntimeConfig } from '../config/kata-config.js';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { decodeStandardBase64 } from '../input/base64.js';
import { clipValue, hasControl, quoteValue } from '../input/escape-text.js';
import { MAX_ANNOTATION_VALUE_BYTES } from '../input/limits.js';

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

const U32_MAX = 4294967295;

/** Kata reads booleans with Rust's `bool::from_str`: exactly `true` or `false`. */
function parseBool(value: string): rules.Rule<boolean> {
  const v = value.trim();
  return v === 'true' || v === 'false' ? ok(v === 'true') : err(`${quoteValue(value)} is not a boolean (true or false)`);
}

function parseU32(value: string): rules.Rule<number> {
  const v = value.trim();
  const n = /^\+?\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n <= U32_MAX ? ok(n) : err(`${quoteValue(value)} is not an integer in [0, ${U32_MAX}]`);
}

const setBool = (set: (d: Draft, v: boolean) => void): Apply => (value, d) => parseBool(value).map((v) => set(d, v));
const setU32 = (set: (d: Draft, v: number) => void): Apply => (value, d) => parseU32(value).map((v) => set(d, v));
const setRule = <T>(rule: (v: string) => rules.Rule<T>, set: (d: Draft, v: T) => void): Apply => (value, d) =>
  rule(value).map((v) => set(d, v));

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1, k: 1e3, kb: 1e3, ki: 2 ** 10, kib: 2 ** 10, m: 1e6, mb: 1e6, mi: 2 ** 20, mib: 2 ** 20,
  g: 1e9, gb: 1e9, gi: 2 ** 30, gib: 2 ** 30, t: 1e12, tb: 1e12, ti: 2 ** 40, tib: 2 ** 40,
};

/**
 * `default_memory` in MiB. With a unit (`2Gi`, `512MiB`, `1G`) it is converted and truncated to
 * MiB, as runtime-rs does with byte_unit; a bare number is MiB, as in runtime-go and the config
 * key (runtime-rs would read it as bytes and then refuse it as below the minimum).
 */
export function parseMemoryMiB(value: string): rules.Rule<number> {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(value.trim());
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor = unit === '' ? 2 ** 20 : Object.hasOwn(UNIT_BYTES, unit) ? UNIT_BYTES[unit] : undefined;
  if (m === null || factor === undefined) return err(`${quoteValue(value)} is not a memory size such as 2048 or 2Gi`);
  const mib = Math.floor((Number(m[1]) * factor) / 2 ** 20);
  if (mib > U32_MAX) return err(`${clipValue(value)} is too large`);
  if (mib < 64) return err(`memory specified in annotation ${mib} is less than minimum limitation 64`);
  return ok(mib);
}

/** kata-types BootInfo::replace_kernel_params: new parameters replace existing ones with the same key. */
export function replaceKernelParams(current: string, update: string): string {
  const keyOf = (p: string): string => p.split('=', 1)[0] ?? p;
  const added = update.split(' ').map((p) => p.trim()).filter((p) => p !== '');
  if (added.length === 0) return current;
  const replaced = new Set(added.map(keyOf));
  const kept = current.split(' ').map((p) => p.trim()).filter((p) => p !== '' && !replaced.has(keyOf(p)));
  return [...kept, ...added].join(' ');
}

/**
 * The `kernel_params` annotation, merged into the config's as Kata does. Kata takes any text;
 * kata-ts refuses control characters: the kernel splits parameters on any whitespace (a newline
 * too) while the by-key replacement splits on spaces only, so "quiet\ninit=/x" would slip a
 * parameter past the replacement.
 */
function kernelParamsText(value: string): rules.Rule<string> {
  return hasControl(value) ? err(`${quoteValue(value)} contains a control character; separate parameters with spaces`) : ok(value);
}

/**
 * Decompressed initdata cap. The reference has none, so a small gzip bomb in one annotation
 * (~1000:1) made the planner allocate hundreds of MiB; initdata documents are a few KiB.
 */
export const MAX_INITDATA_BYTES = 4 * 1024 * 1024;

/**
 * Decodes `cc_init_data` (base64 STANDARD of gzip of TOML) to the raw TOML text, not re-serialised
 * (kata-types initdata.rs `add_hypervisor_initdata_overrides` at HEAD). "" stays "".
 */
export function decodeInitdataAnnotation(value: string): rules.Rule<string> {
  if (value === '') return ok('');
  const compressed = decodeStandardBase64(value);
  if (compressed === null) return err('base64 decode: not padded standard base64');
  let gz: Buffer;
  try {
    gz = gunzipSync(compressed, { maxOutputLength: MAX_INITDATA_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') return err(`gz decoder failed: initdata larger than ${MAX_INITDATA_BYTES} bytes once decompressed`);
    return err(`gz decoder failed: ${e instanceof Error ? clipValue(e.message) : 'not gzip data'}`);
  }
  try {
    return ok(new TextDecoder('utf-8', { fatal: true }).decode(gz));
  } catch {
    return err('gz decoder failed: stream did not contain valid UTF-8');
  }
}

/** `default_vcpus` as exact decimal text, with Kata's annotation message for too many vCPUs. */
function annotationVcpus(value: string): rules.Rule<string> {
  const v = value.trim();
  if (Number(v) > MAX_QEMU_VCPUS) return err(`Vcpus specified in annotation ${clipValue(v)} is more than maximum limitation ${MAX_QEMU_VCPUS}`);
  return rules.vcpuDecimalText(v);
}

const escapeOutside = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
const escapeInside = (c: string) => c.replace(/[\\\]\[^-]/g, '\\$&');

/** `[...]` / `[!...]` starting at `open` → a regex class and the index after `]`; Err when unclosed or a range is reversed. */
function globClass(chars: readonly string[], open: number): rules.Rule<{ regex: string; next: number }> {
  let j = open + 1;
  const negate = chars[j] === '!' || chars[j] === '^';
  if (negate) j++;
  const start = j;
  if (chars[j] === ']') j++; // a leading `]` is literal, as in glob(3)
  while (j < chars.length && chars[j] !== ']') j++;
  if (j >= chars.length) return err('unclosed character class');
  const body = chars.slice(start, j);
  let cls = '';
  for (let k = 0; k < body.length; k++) {
    if (body[k + 1] === '-' && k + 2 < body.length) {
      if (body[k]!.codePointAt(0)! > body[k + 2]!.codePointAt(0)!) return err(`reversed range ${body[k]}-${body[k + 2]}`);
      cls += `${escapeInside(body[k]!)}-${escapeInside(body[k + 2]!)}`;
      k += 2;
    } else cls += escapeInside(body[k]!);
  }
  return ok({ regex: negate ? `[^/${cls}]` : `[${cls}]`, next: j + 1 });
}

/**
 * glob(3)-style pattern (`*`, `?`, `[a-z]`, `[!x]`) → anchored RegExp. Err for a pattern glob
 * refuses (an unclosed `[`, a reversed range): such a pattern allows nothing, as in kata-types
 * `validate_path_pattern`, instead of throwing while the regex is built.
 */
export function globToRegExp(pattern: string): rules.Rule<RegExp> {
  const chars = [...pattern];
  let re = '';
  for (let i = 0; i < chars.length; ) {
    const c = chars[i]!;
    if (c === '[') {
      const cls = globClass(chars, i);
      if (cls.isErr()) return err(`invalid glob pattern ${quoteValue(pattern)}: ${cls.error}`);
      re += cls.value.regex;
      i = cls.value.next;
      continue;
    }
    re += c === '*' ? '[^/]*' : c === '?' ? '[^/]' : escapeOutside(c);
    i++;
  }
  return ok(new RegExp(`^${re}$`, 'u'));
}

function allowedPath(d: Draft, value: string): rules.Rule<void> {
  const patterns = d.hv.validHypervisorPaths.map(globToRegExp);
  if (patterns.some((p) => p.isOk() && p.value.test(value))) return ok(undefined);
  const invalid = patterns.flatMap((p) => (p.isErr() ? [`; ${p.error}`] : [])).join('');
  return err(`${clipValue(value)} is not allowed by valid_hypervisor_paths [${d.hv.validHypervisorPaths.join(', ')}]${invalid}`);
}

const HYPERVISOR_KEYS: Readonly<Record<string, Apply>> = {
  path: (v, d) => allowedPath(d, v).map(() => void (d.hv.path = v)),
  kernel: setRule(rules.absolutePath, (d, v) => (d.hv.kernel = v)),
  image: setRule(rules.absolutePath, (d, v) => (d.hv.image = v)),
  initrd: setRule(rules.absolutePath, (d, v) => (d.hv.initrd = v)),
  firmware: setRule(rules.absolutePath, (d, v) => (d.hv.firmware = v)),
  kernel_params: setRule(kernelParamsText, (d, v) => (d.hv.kernelParams = replaceKernelParams(d.hv.kernelParams, v))),
  machine_type: (v, d) => ok(void (d.hv.machineType = v)),
  machine_accelerators: (v, d) => ok(void (d.hv.machineAccelerators = v)),
  cpu_features: (v, d) => ok(void (d.hv.cpuFeatures = v)),
  default_vcpus: setRule(annotationVcpus, (d, v) => (d.hv.defaultVcpus = v)),
  default_max_vcpus: setRule((v) => parseU32(v).andThen(rules.maxVcpus), (d, v) => (d.hv.defaultMaxVcpus = v)),
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
  shared_fs: setRule((v) => rules.sharedFs(v.trim()), (d, v) => (d.hv.sharedFs = v)),
  virtio_fs_cache: setRule(rules.virtioFsCache, (d, v) => (d.hv.virtioFsCache = v)),
  virtio_fs_cache_size: setU32((d, v) => (d.hv.virtioFsCacheSizeMiB = v)),
  virtio_fs_extra_args: (v, d) => ok(void (d.hv.virtioFsExtraArgs = [...d.hv.virtioFsExtraArgs, ...v.split(',')])),
  cc_init_data: setRule(decodeInitdataAnnotation, (d, v) => (d.hv.initdata = v)),
};

// Hypervisor annotations Kata knows that have no counterpart in KataConfig (or whose allowlist
// kata-ts does not keep, like virtio_fs_daemon and entropy_source): accepted, not applied.
const IGNORED_HYPERVISOR_KEYS: ReadonlySet<string> = new Set([
  'path_hash', 'ctlpath', 'hypervisorctl_hash', 'jailer_path', 'jailer_hash', 'enable_iothreads',
  'asset_hash_type', 'disable_image_nvdimm', 'memory_offset', 'enable_vhost_user_store',
  'vhost_user_store_path', 'kernel_hash', 'image_hash', 'initrd_hash', 'firmware_hash',
  'kernel_verity_params', 'hotplug_vfio_on_root_bus', 'enable_iommu', 'enable_iommu_platform',
  'entropy_source', 'prefetch_files.list', 'enable_mem_prealloc', 'enable_hugepages', 'hugepage_type',
  'file_mem_backend', 'enable_virtio_mem', 'enable_swap', 'enable_guest_swap', 'disable_vhost_net',
  'rx_rate_limiter_max_rate', 'tx_rate_limiter_max_rate', 'virtio_fs_daemon', 'msize_9p',
]);

const AGENT_KEYS: Readonly<Record<string, Apply>> = {
  // `;`-separated, appended (kata-types); blank entries are dropped.
  kernel_modules: (v, d) =>
    ok(void (d.agent.kernelModules = [...d.agent.kernelModules, ...v.split(';').map((m) => m.trim()).filter((m) => m !== '')])),
  enable_tracing: setBool((d, v) => (d.agent.enableTracing = v)),
};

const RUNTIME_KEYS: Readonly<Record<string, Apply>> = {
  disable_guest_seccomp: setBool((d, v) => (d.runtime.disableGuestSeccomp = v)),
  enable_pprof: setBool((d, v) => (d.runtime.enablePprof = v)),
  // `,`-separated, appended (kata-types).
  experimental: (v, d) => ok(void (d.runtime.experimental = [...d.runtime.experimental, ...v.split(',')])),
  experimental_force_guest_pull: setBool((d, v) => (d.runtime.experimentalForceGuestPull = v)), // runtime-go
  internetworking_model: setRule(rules.internetworkingModel, (d, v) => (d.runtime.internetworkingModel = v)),
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
  return err(`value of ${bytes} bytes is larger than ${MAX_ANNOTATION_VALUE_BYTES} bytes (MAX_ANNOTATION_VALUE_BYTES)`);
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
  const keys = Object.keys(annotations).filter((k) => k.startsWith(KATA_CONFIG_PREFIX)).sort();
  for (const key of keys) {
    const value = annotations[key] ?? '';
    const apply = (fn: Apply | undefined): void => {
      const result = fn === undefined ? err(`Invalid annotation type ${key}`) : withinCap(value).andThen((v) => fn(v, draft));
      if (result.isErr()) problems.push(problem('annotation', source, key, clipValue(value), result.error));
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
    } else if (key.startsWith(AGENT_PREFIX) && Object.hasOwn(AGENT_KEYS, key.slice(AGENT_PREFIX.length))) {
      apply(AGENT_KEYS[key.slice(AGENT_PREFIX.length)]);
    } else if (key.startsWith(RUNTIME_PREFIX) && Object.hasOwn(RUNTIME_KEYS, key.slice(RUNTIME_PREFIX.length))) {
      apply(RUNTIME_KEYS[key.slice(RUNTIME_PREFIX.length)]);
    } else {
      warnings.push(`annotation ${key} ignored: ${IGNORED_OTHER_KEYS.has(key) ? 'not supported by kata-ts' : 'not enabled'}`);
    }
  }
  const portKeys = [`${HYPERVISOR_PREFIX}pcie_root_port`, `${HYPERVISOR_PREFIX}pcie_switch_port`];
  const ports = rules.pciePorts(draft.hv.pcieRootPort, draft.hv.pcieSwitchPort);
  if (ports.isErr() && portKeys.some((k) => keys.includes(k))) {
    const key = `${HYPERVISOR_PREFIX}pcie_switch_port`;
    problems.push(problem('annotation', source, key, String(draft.hv.pcieSwitchPort), ports.error));
  }
  if (problems.length > 0) return err(planError(...problems));
  return ok({ config: { hypervisor: draft.hv, agent: draft.agent, runtime: draft.runtime }, warnings });
}
