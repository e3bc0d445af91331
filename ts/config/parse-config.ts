// Reads Kata's configuration.toml into a KataConfig: TOML syntax, then section shapes (zod), then
// Kata's adjust/validate rules (config-rules.ts). Every problem is reported, not only the first;
// unknown keys are warnings, as a newer Kata config may carry keys this version does not know.
import { err, ok, type Result } from 'neverthrow';
import { parse as parseToml, TomlError } from 'smol-toml';
import { planError, problem, type PlanError } from '../errors.js';
import { isTable, Reader, readSection, taker, type Table } from './config-reader.js';
import {
  readBlockDevices,
  readBootAssets,
  readInitdata,
  readSharedFs,
} from './hypervisor-parts.js';
import { defaultKataConfig } from './config-defaults.js';
import * as rules from './config-rules.js';
import {
  AgentSection,
  HypervisorSection,
  IGNORED_AGENT_KEYS,
  IGNORED_HYPERVISOR_KEYS,
  IGNORED_RUNTIME_KEYS,
  IGNORED_SECTIONS,
  RuntimeSection,
  SecurityInfoSection,
} from './config-schema.js';
import {
  MAX_BRIDGES,
  type AgentConfig,
  type HypervisorConfig,
  type KataConfig,
  type RuntimeConfig,
} from './kata-config.js';

export { defaultKataConfig } from './config-defaults.js';

/** A configuration and the warnings (unknown keys, ignored sections) met while reading it. */
export interface ParsedConfig {
  readonly config: KataConfig;
  readonly warnings: string[];
}

/** Parses and validates configuration.toml text; `source` names the file in problems. */
export function parseKataConfig(text: string, source: string): Result<ParsedConfig, PlanError> {
  return readToml(text, source).andThen((doc) => readConfig(doc, source));
}

function readToml(text: string, source: string): Result<Table, PlanError> {
  try {
    return ok(parseToml(text, { integersAsBigInt: 'asNeeded' }) as Table);
  } catch (e) {
    if (!(e instanceof TomlError))
      return err(planError(problem('config', source, 'toml', '', String(e))));
    const what = (e.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    const where = `${e.line}:${e.column}`;
    return err(
      planError(
        problem(
          'config',
          source,
          where,
          '',
          `TOML syntax error at line ${e.line}, column ${e.column}: ${what}`,
        ),
      ),
    );
  }
}

function readConfig(doc: Table, source: string): Result<ParsedConfig, PlanError> {
  const r = new Reader(source);
  for (const key of Object.keys(doc)) {
    if (key === 'hypervisor' || key === 'agent' || key === 'runtime' || IGNORED_SECTIONS.has(key))
      continue;
    r.warn(isTable(doc[key]) ? `unknown section ${key}` : `unknown key ${key}`);
  }
  const hypervisor = readHypervisor(r, pickSection(r, doc, 'hypervisor', 'qemu'));
  const agent = readAgent(r, pickSection(r, doc, 'agent', 'kata'));
  const runtimeTable = doc['runtime'] ?? {};
  if (!isTable(runtimeTable)) r.fail('runtime', runtimeTable, 'expected a table');
  const runtime = readRuntime(r, isTable(runtimeTable) ? runtimeTable : {});
  if (r.problems.length > 0) return err(planError(...r.problems));
  return ok({ config: { hypervisor, agent, runtime }, warnings: r.warnings });
}

interface NamedSection {
  readonly name: string;
  readonly table: Table;
}

/**
 * Picks `[kind.<name>]`: `preferred` when present, else the only one. Several others are an error
 * (which one would Kata use? that depends on `[runtime] hypervisor_name`, which kata-ts does not follow).
 */
function pickSection(r: Reader, doc: Table, kind: string, preferred: string): NamedSection {
  const parent = doc[kind] ?? {};
  if (!isTable(parent)) {
    r.fail(kind, parent, 'expected a table of sections');
    return { name: preferred, table: {} };
  }
  const names = Object.keys(parent).filter((n) => isTable(parent[n]));
  for (const n of Object.keys(parent)) if (!isTable(parent[n])) r.warn(`unknown key ${kind}.${n}`);
  if (names.includes(preferred)) {
    for (const n of names)
      if (n !== preferred)
        r.warn(`ignored section ${kind}.${n}: kata-ts reads only ${kind}.${preferred}`);
    return { name: preferred, table: parent[preferred] as Table };
  }
  const only = names[0];
  if (only === undefined) return { name: preferred, table: {} };
  if (names.length > 1) {
    r.fail(
      kind,
      names.join(', '),
      `several ${kind} sections (${names.join(', ')}); expected exactly one, or ${kind}.${preferred}`,
    );
  } else if (kind === 'hypervisor') {
    r.warn(`hypervisor.${only}: kata-ts drives only qemu; reading it with qemu rules`);
  }
  return { name: only, table: parent[only] as Table };
}

const trimList = (list: string): string =>
  list
    .split(',')
    .map((f) => f.trim())
    .join(','); // CpuInfo/MachineInfo adjust_config

function readHypervisor(r: Reader, { name, table }: NamedSection): HypervisorConfig {
  const prefix = `hypervisor.${name}`;
  const h = readSection(r, table, HypervisorSection, prefix, IGNORED_HYPERVISOR_KEYS);
  const security = readSection(
    r,
    h.security_info ?? {},
    SecurityInfoSection,
    `${prefix}.security_info`,
    {},
  );
  const d = defaultKataConfig().hypervisor;
  const take = taker(r, prefix);
  const pcieRootPort = h.pcie_root_port ?? d.pcieRootPort;
  const pcieSwitchPort = h.pcie_switch_port ?? d.pcieSwitchPort;
  take('pcie_switch_port', pcieSwitchPort, 0, (sw) => rules.pciePorts(pcieRootPort, sw), undefined);
  return {
    name,
    path: take('path', h.path, d.path, rules.absolutePath, d.path),
    kernel: take('kernel', h.kernel, d.kernel, rules.absolutePath, d.kernel),
    ...readBootAssets(r, prefix, h, d),
    machineType: h.machine_type || d.machineType, // "" → q35 (qemu adjust_config)
    kernelParams: h.kernel_params ?? d.kernelParams,
    defaultVcpus: take(
      'default_vcpus',
      h.default_vcpus,
      d.defaultVcpus,
      rules.vcpuDecimalText,
      d.defaultVcpus,
    ),
    defaultMaxVcpus: take(
      'default_maxvcpus',
      h.default_maxvcpus,
      d.defaultMaxVcpus,
      rules.maxVcpus,
      0,
    ),
    overheadVcpus: take(
      'overhead_vcpus',
      h.overhead_vcpus,
      d.overheadVcpus,
      rules.overheadVcpuText,
      d.overheadVcpus,
    ),
    overheadMemoryMiB: h.overhead_memory ?? d.overheadMemoryMiB,
    defaultMemoryMiB: take(
      'default_memory',
      h.default_memory,
      d.defaultMemoryMiB,
      rules.defaultMemory,
      d.defaultMemoryMiB,
    ),
    defaultMaxMemoryMiB: h.default_maxmemory ?? d.defaultMaxMemoryMiB,
    memorySlots: take(
      'memory_slots',
      h.memory_slots,
      d.memorySlots,
      rules.memorySlots,
      d.memorySlots,
    ),
    ...readBlockDevices(r, prefix, h, d),
    ...readSharedFs(r, prefix, h, d),
    pcieRootPort,
    pcieSwitchPort,
    defaultBridges: readDefaultBridges(r, prefix, h.default_bridges ?? d.defaultBridges),
    hotplugVfio: take('hot_plug_vfio', h.hot_plug_vfio, d.hotplugVfio, rules.vfioPort, 'no-port'),
    coldplugVfio: take(
      'cold_plug_vfio',
      h.cold_plug_vfio,
      d.coldplugVfio,
      rules.vfioPort,
      'no-port',
    ),
    rootless: h.rootless ?? d.rootless,
    enableAnnotations: take(
      'enable_annotations',
      h.enable_annotations,
      d.enableAnnotations,
      rules.annotationPatterns,
      [],
    ),
    validHypervisorPaths: h.valid_hypervisor_paths ?? d.validHypervisorPaths,
    initdata: readInitdata(r, prefix, h.initdata, security.initdata),
    confidentialGuest: h.confidential_guest ?? d.confidentialGuest,
    rootfsType: h.rootfs_type || d.rootfsType, // "" → ext4 (qemu adjust_config)
    vmRootfsDriver: take(
      'vm_rootfs_driver',
      h.vm_rootfs_driver,
      d.vmRootfsDriver,
      rules.blockDriver,
      d.vmRootfsDriver,
    ),
    firmware: take('firmware', h.firmware, d.firmware, rules.absolutePathOrEmpty, ''),
    cpuFeatures: trimList(h.cpu_features ?? d.cpuFeatures),
    machineAccelerators: trimList(h.machine_accelerators ?? d.machineAccelerators),
    entropySource: h.entropy_source || d.entropySource, // "" → /dev/urandom (qemu adjust_config)
    enableDebug: h.enable_debug ?? d.enableDebug,
    guestHookPath: h.guest_hook_path ?? d.guestHookPath,
  };
}

/** kata-types `DeviceInfo::adjust_config`: more than MAX_BRIDGE_SIZE bridges are cut to it (we also say so). */
function readDefaultBridges(r: Reader, prefix: string, bridges: number): number {
  if (bridges <= MAX_BRIDGES) return bridges;
  r.warn(
    `${prefix}.default_bridges: ${bridges} PCI bridges are too many; using ${MAX_BRIDGES} (kata-types MAX_BRIDGE_SIZE)`,
  );
  return MAX_BRIDGES;
}

function readAgent(r: Reader, { name, table }: NamedSection): AgentConfig {
  const a = readSection(r, table, AgentSection, `agent.${name}`, IGNORED_AGENT_KEYS);
  const d = defaultKataConfig().agent;
  return {
    name,
    debug: a.enable_debug ?? d.debug,
    dialTimeoutSecs: a.dial_timeout ?? d.dialTimeoutSecs,
    dialTimeoutMs: a.dial_timeout_ms ?? d.dialTimeoutMs,
    reconnectTimeoutMs: a.reconnect_timeout_ms ?? d.reconnectTimeoutMs,
    requestTimeoutMs: a.request_timeout_ms ?? d.requestTimeoutMs,
    kernelModules: a.kernel_modules ?? d.kernelModules,
    enableTracing: a.enable_tracing ?? d.enableTracing,
  };
}

function readRuntime(r: Reader, table: Table): RuntimeConfig {
  const s = readSection(r, table, RuntimeSection, 'runtime', IGNORED_RUNTIME_KEYS);
  const d = defaultKataConfig().runtime;
  const take = taker(r, 'runtime');
  return {
    enableDebug: s.enable_debug ?? d.enableDebug,
    internetworkingModel: take(
      'internetworking_model',
      s.internetworking_model,
      d.internetworkingModel,
      rules.internetworkingModel,
      d.internetworkingModel,
    ),
    disableGuestSeccomp: s.disable_guest_seccomp ?? d.disableGuestSeccomp,
    sandboxCgroupOnly: s.sandbox_cgroup_only ?? d.sandboxCgroupOnly,
    staticSandboxResourceMgmt: s.static_sandbox_resource_mgmt ?? d.staticSandboxResourceMgmt,
    staticSandboxDefaultWorkloadMemMiB:
      s.static_sandbox_default_workload_mem ?? d.staticSandboxDefaultWorkloadMemMiB,
    enablePprof: s.enable_pprof ?? d.enablePprof,
    experimental: s.experimental ?? d.experimental,
    experimentalForceGuestPull: s.experimental_force_guest_pull ?? d.experimentalForceGuestPull,
    vfioMode: take('vfio_mode', s.vfio_mode, d.vfioMode, rules.vfioMode, d.vfioMode),
    disableNewNetns: s.disable_new_netns ?? d.disableNewNetns,
    dan: take('dan_conf', s.dan_conf, d.dan, rules.absolutePathOrEmpty, d.dan),
    kubeletRootDir: take(
      'kubelet_root_dir',
      s.kubelet_root_dir,
      d.kubeletRootDir,
      rules.absolutePath,
      d.kubeletRootDir,
    ),
    allowAnyCopyDirectory: s.allow_any_copy_directory ?? d.allowAnyCopyDirectory,
    copyWatchDebounceMs: s.copy_watch_debounce_ms ?? d.copyWatchDebounceMs,
  };
}
