// Typed view of Kata's configuration.toml after parsing and defaulting (see config/parse-config.ts).
// Field names are camelCase forms of Kata's keys; units are in the names.

/** kata-types `MAX_BRIDGE_SIZE`: `default_bridges` above it is cut to it. */
export const MAX_BRIDGES = 5;

export const BLOCK_DRIVERS = [
  'virtio-blk-pci',
  'virtio-blk-mmio',
  'virtio-blk-ccw',
  'virtio-scsi',
  'virtio-pmem',
] as const;
export type BlockDriver = (typeof BLOCK_DRIVERS)[number];

export const BLOCK_AIO_MODES = ['io_uring', 'native', 'threads'] as const;
export type BlockAio = (typeof BLOCK_AIO_MODES)[number];

export const SHARED_FS_KINDS = ['virtio-fs', 'virtio-9p', 'virtio-fs-nydus', 'none'] as const;
export type SharedFs = (typeof SHARED_FS_KINDS)[number];

export interface HypervisorConfig {
  /** Section name under [hypervisor.*]; only `qemu` is driven by kata-ts. */
  readonly name: string;
  readonly path: string;
  readonly kernel: string;
  readonly image: string;
  readonly initrd: string;
  readonly machineType: string;
  readonly kernelParams: string;
  /** Exact decimal text of `default_vcpus` (e.g. "1", "0.75"); never a float. */
  readonly defaultVcpus: string;
  /** 0 means "as many as the host has". */
  readonly defaultMaxVcpus: number;
  /** Exact decimal text of `overhead_vcpus`, added to the request in static sizing. */
  readonly overheadVcpus: string;
  /** `overhead_memory` (MiB), added to the request in static sizing. */
  readonly overheadMemoryMiB: number;
  readonly defaultMemoryMiB: number;
  /** 0 means "host memory". */
  readonly defaultMaxMemoryMiB: number;
  readonly memorySlots: number;
  readonly blockDeviceDriver: BlockDriver;
  readonly blockDeviceAio: BlockAio;
  readonly blockDeviceCacheDirect: boolean;
  readonly blockDeviceCacheSet: boolean;
  readonly blockDeviceCacheNoflush: boolean;
  readonly blockDeviceLogicalSectorSize: number;
  readonly blockDevicePhysicalSectorSize: number;
  readonly disableBlockDeviceUse: boolean;
  readonly sharedFs: SharedFs;
  readonly virtioFsDaemon: string;
  readonly virtioFsExtraArgs: readonly string[];
  readonly virtioFsCache: string;
  readonly virtioFsCacheSizeMiB: number;
  readonly pcieRootPort: number;
  readonly pcieSwitchPort: number;
  /** `default_bridges`: cold-plugged `pci-bridge-N` devices taking hot-plugged PCI devices when no PCIe port is configured (at most 5, as kata-types). */
  readonly defaultBridges: number;
  readonly hotplugVfio: string;
  readonly coldplugVfio: string;
  readonly rootless: boolean;
  /** Regexes of hypervisor annotation keys (suffix after `io.katacontainers.config.hypervisor.`) that may override config. */
  readonly enableAnnotations: readonly string[];
  readonly validHypervisorPaths: readonly string[];
  /** `security_info.initdata`: raw initdata TOML, empty for none. */
  readonly initdata: string;
  /** Confidential guest protection the host offers (`none`, `tdx`, `snp`, `cca`, `se`); a host fact, defaulted from config. */
  readonly confidentialGuest: boolean;
  // Boot and machine settings the QEMU command line needs (Kata keys in parentheses).
  /** Guest rootfs filesystem (`rootfs_type`): `ext4`, `xfs` or `erofs`. */
  readonly rootfsType: string;
  /** Driver attaching the guest image (`vm_rootfs_driver`), one of BLOCK_DRIVERS. */
  readonly vmRootfsDriver: BlockDriver;
  /** Firmware path (`firmware`); empty for QEMU's default. */
  readonly firmware: string;
  /** `-cpu` features (`cpu_features`), comma-separated, e.g. `pmu=off`. */
  readonly cpuFeatures: string;
  /** Extra `-machine` options (`machine_accelerators`), comma-separated. */
  readonly machineAccelerators: string;
  /** Host entropy source for virtio-rng (`entropy_source`). */
  readonly entropySource: string;
  /** Hypervisor and guest kernel debug output (`enable_debug` in the hypervisor section). */
  readonly enableDebug: boolean;
  /** Guest OCI hook directory (`guest_hook_path`); empty for none. */
  readonly guestHookPath: string;
}

export interface AgentConfig {
  readonly name: string;
  readonly debug: boolean;
  /** `dial_timeout` in seconds (runtime-go key; the total time allowed to reach the agent). */
  readonly dialTimeoutSecs: number;
  /** `dial_timeout_ms`: one connection attempt (runtime-rs key). */
  readonly dialTimeoutMs: number;
  /** `reconnect_timeout_ms`: retry budget for reaching the agent (runtime-rs key). */
  readonly reconnectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly kernelModules: readonly string[];
  readonly enableTracing: boolean;
}

export interface RuntimeConfig {
  readonly enableDebug: boolean;
  readonly internetworkingModel: string;
  readonly disableGuestSeccomp: boolean;
  readonly sandboxCgroupOnly: boolean;
  readonly staticSandboxResourceMgmt: boolean;
  readonly staticSandboxDefaultWorkloadMemMiB: number;
  readonly enablePprof: boolean;
  /** `experimental = [...]`, e.g. `force_guest_pull`. */
  readonly experimental: readonly string[];
  readonly experimentalForceGuestPull: boolean;
  readonly vfioMode: string;
  readonly disableNewNetns: boolean;
  readonly dan: string;
  // kata-ts extensions (documented in the README):
  /** Kubelet root for the copy-volume allowlist (default `/var/lib/kubelet`). */
  readonly kubeletRootDir: string;
  /** Copy any host directory under shared_fs = none (runtime-go behaviour); default false. */
  readonly allowAnyCopyDirectory: boolean;
  /** Debounce of the copy-volume watcher, ms (default 500). */
  readonly copyWatchDebounceMs: number;
}

export interface KataConfig {
  readonly hypervisor: HypervisorConfig;
  readonly agent: AgentConfig;
  readonly runtime: RuntimeConfig;
}
