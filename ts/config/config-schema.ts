// Shapes and TOML types of the configuration.toml sections kata-ts reads, as zod schemas keyed
// by Kata's own key names, plus the Kata keys kata-ts accepts but does not act on.
import { z } from 'zod';

const U32_MAX = 4294967295;

const text = z.string({ error: 'expected a string' });
const flag = z.boolean({ error: 'expected a boolean (true or false)' });
const u32 = z
  .number({ error: `expected a non-negative integer up to ${U32_MAX}` })
  .int({ error: 'expected an integer' })
  .min(0, { error: 'must not be negative' })
  .max(U32_MAX, { error: `must be at most ${U32_MAX}` });
const strings = z.array(z.string({ error: 'expected a string' }), {
  error: 'expected an array of strings',
});
/** `default_vcpus`: a TOML number, or its decimal text in quotes (checked by `vcpuDecimalText`). */
const vcpus = z.union([z.number(), z.string()], {
  error: 'expected a number or a decimal string such as "0.75"',
});

/** `[hypervisor.<name>.security_info]`: Kata flattens it into the hypervisor section; both are read. */
export const SecurityInfoSection = z.object({ initdata: text.optional() });

/** `[hypervisor.<name>]` keys kata-ts uses. */
export const HypervisorSection = z.object({
  path: text.optional(),
  kernel: text.optional(),
  image: text.optional(),
  initrd: text.optional(),
  machine_type: text.optional(),
  kernel_params: text.optional(),
  default_vcpus: vcpus.optional(),
  overhead_vcpus: vcpus.optional(),
  overhead_memory: u32.optional(),
  default_maxvcpus: u32.optional(),
  default_memory: u32.optional(),
  default_maxmemory: u32.optional(),
  memory_slots: u32.optional(),
  block_device_driver: text.optional(),
  block_device_aio: text.optional(),
  block_device_cache_direct: flag.optional(),
  block_device_cache_set: flag.optional(),
  block_device_cache_noflush: flag.optional(),
  block_device_logical_sector_size: u32.optional(),
  block_device_physical_sector_size: u32.optional(),
  disable_block_device_use: flag.optional(),
  shared_fs: text.optional(),
  virtio_fs_daemon: text.optional(),
  virtio_fs_extra_args: strings.optional(),
  virtio_fs_cache: text.optional(),
  virtio_fs_cache_size: u32.optional(),
  pcie_root_port: u32.optional(),
  pcie_switch_port: u32.optional(),
  default_bridges: u32.optional(),
  hot_plug_vfio: text.optional(),
  cold_plug_vfio: text.optional(),
  rootless: flag.optional(),
  enable_annotations: strings.optional(),
  valid_hypervisor_paths: strings.optional(),
  initdata: text.optional(),
  security_info: z.record(z.string(), z.unknown(), { error: 'expected a table' }).optional(),
  confidential_guest: flag.optional(),
  rootfs_type: text.optional(),
  vm_rootfs_driver: text.optional(),
  firmware: text.optional(),
  cpu_features: text.optional(),
  machine_accelerators: text.optional(),
  entropy_source: text.optional(),
  enable_debug: flag.optional(),
  guest_hook_path: text.optional(),
});
export type HypervisorSection = z.infer<typeof HypervisorSection>;

/** `[agent.<name>]` keys kata-ts uses. `dial_timeout` is runtime-go's (seconds), the `_ms` ones runtime-rs's. */
export const AgentSection = z.object({
  enable_debug: flag.optional(),
  dial_timeout: u32.optional(),
  dial_timeout_ms: u32.optional(),
  reconnect_timeout_ms: u32.optional(),
  request_timeout_ms: u32.optional(),
  kernel_modules: strings.optional(),
  enable_tracing: flag.optional(),
});
export type AgentSection = z.infer<typeof AgentSection>;

/** `[runtime]` keys kata-ts uses, including its own extensions (last three). */
export const RuntimeSection = z.object({
  enable_debug: flag.optional(),
  internetworking_model: text.optional(),
  disable_guest_seccomp: flag.optional(),
  sandbox_cgroup_only: flag.optional(),
  static_sandbox_resource_mgmt: flag.optional(),
  static_sandbox_default_workload_mem: u32.optional(),
  enable_pprof: flag.optional(),
  experimental: strings.optional(),
  experimental_force_guest_pull: flag.optional(),
  vfio_mode: text.optional(),
  disable_new_netns: flag.optional(),
  dan_conf: text.optional(),
  kubelet_root_dir: text.optional(),
  allow_any_copy_directory: flag.optional(),
  copy_watch_debounce_ms: u32.optional(),
});
export type RuntimeSection = z.infer<typeof RuntimeSection>;

/** TOML type of a Kata key kata-ts accepts without acting on it. */
export type IgnoredKind = 'string' | 'boolean' | 'integer' | 'strings' | 'table' | 'tables';

// Kata keys (kata-types structs and the runtime-rs/runtime-go templates) that a real
// configuration.toml may hold. kata-ts does not act on them, but they are Kata's, so they are
// type-checked and accepted without the "unknown key" warning.
export const IGNORED_HYPERVISOR_KEYS: Readonly<Record<string, IgnoredKind>> = {
  ctlpath: 'string',
  valid_ctlpaths: 'strings',
  jailer_path: 'string',
  valid_jailer_paths: 'strings',
  disable_nesting_checks: 'boolean',
  enable_iothreads: 'boolean',
  indep_iothreads: 'integer',
  memory_offset: 'integer',
  enable_vhost_user_store: 'boolean',
  vhost_user_store_path: 'string',
  valid_vhost_user_store_paths: 'strings',
  vhost_user_reconnect_timeout_sec: 'integer',
  disk_rate_limiter_bw_max_rate: 'integer',
  disk_rate_limiter_bw_one_time_burst: 'integer',
  disk_rate_limiter_ops_max_rate: 'integer',
  disk_rate_limiter_ops_one_time_burst: 'integer',
  queue_size: 'integer',
  num_queues: 'integer',
  disable_image_nvdimm: 'boolean',
  kernel_verity_params: 'string',
  firmware_volume: 'string',
  pflashes: 'strings',
  valid_entropy_sources: 'strings',
  hotplug_vfio_on_root_bus: 'boolean',
  enable_iommu: 'boolean',
  enable_iommu_platform: 'boolean',
  reclaim_guest_freed_memory: 'boolean',
  log_level: 'string',
  guest_memory_dump_paging: 'boolean',
  guest_memory_dump_path: 'string',
  extra_monitor_socket: 'string',
  dbg_monitor_socket: 'string',
  enable_mem_prealloc: 'boolean',
  enable_hugepages: 'boolean',
  hugepage_type: 'string',
  enable_virtio_mem: 'boolean',
  enable_swap: 'boolean',
  enable_guest_swap: 'boolean',
  guest_swap_path: 'string',
  guest_swap_size_percent: 'integer',
  guest_swap_create_threshold_secs: 'integer',
  file_mem_backend: 'string',
  valid_file_mem_backends: 'strings',
  disable_vhost_net: 'boolean',
  rx_rate_limiter_max_rate: 'integer',
  tx_rate_limiter_max_rate: 'integer',
  network_queues: 'integer',
  rootless_user: 'table',
  disable_seccomp: 'boolean',
  sev_snp_guest: 'boolean',
  snp_id_block: 'string',
  snp_id_auth: 'string',
  snp_guest_policy: 'integer',
  tdx_quote_generation_service_socket_port: 'integer',
  seccompsandbox: 'string',
  seccomp_sandbox: 'string',
  selinux_label: 'string',
  valid_virtio_fs_daemon_paths: 'strings',
  virtio_fs_queue_size: 'integer',
  virtio_fs_is_dax: 'boolean',
  virtio_fs_inode_file_handles: 'string',
  msize_9p: 'integer',
  use_legacy_serial: 'boolean',
  prefetch_list_path: 'string',
  disable_guest_selinux: 'boolean',
  disable_selinux: 'boolean',
  extra_images: 'tables',
  factory: 'table',
  boot_to_be_template: 'boolean',
  boot_from_template: 'boolean',
  memory_path: 'string',
  device_state_path: 'string',
};

export const IGNORED_AGENT_KEYS: Readonly<Record<string, IgnoredKind>> = {
  debug_console_enabled: 'boolean',
  server_port: 'integer',
  log_port: 'integer',
  health_check_request_timeout_ms: 'integer',
  container_pipe_size: 'integer',
  cdh_api_timeout: 'integer',
  create_container_timeout: 'integer',
  mem_agent: 'table',
};

export const IGNORED_RUNTIME_KEYS: Readonly<Record<string, IgnoredKind>> = {
  name: 'string',
  hypervisor_name: 'string',
  agent_name: 'string',
  log_level: 'string',
  sandbox_bind_mounts: 'strings',
  enable_vcpus_pinning: 'boolean',
  enable_tracing: 'boolean',
  jaeger_endpoint: 'string',
  jaeger_user: 'string',
  jaeger_password: 'string',
  emptydir_mode: 'string',
  keep_abnormal: 'boolean',
  shared_mounts: 'tables',
  use_passfd_io: 'boolean',
  passfd_listener_port: 'integer',
  pod_resource_api_sock: 'string',
  disable_guest_empty_dir: 'boolean',
  create_container_timeout: 'integer',
  guest_selinux_label: 'string',
};

/** Top-level Kata sections kata-ts does not read (VM templating, image service). */
export const IGNORED_SECTIONS: ReadonlySet<string> = new Set(['factory', 'image']);

function isTable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** True when `value` has the TOML type `kind`. */
export function hasKind(value: unknown, kind: IgnoredKind): boolean {
  switch (kind) {
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'integer':
      return (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint';
    case 'strings':
      return Array.isArray(value) && value.every((v) => typeof v === 'string');
    case 'table':
      return isTable(value);
    case 'tables':
      return Array.isArray(value) && value.every(isTable);
  }
}

const KIND_NAMES: Readonly<Record<IgnoredKind, string>> = {
  string: 'a string',
  boolean: 'a boolean (true or false)',
  integer: 'an integer',
  strings: 'an array of strings',
  table: 'a table',
  tables: 'an array of tables',
};

/** "expected a string", … for an ignored key of the wrong type. */
export function expectedKind(kind: IgnoredKind): string {
  return `expected ${KIND_NAMES[kind]}`;
}
