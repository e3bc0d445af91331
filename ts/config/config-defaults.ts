// Kata's defaults for a QEMU sandbox: what runtime-rs ends up with when it loads the shipped
// `configuration-qemu-runtime-rs.toml` on x86_64, except `enable_annotations` (a security
// allowlist: absent means none, as in kata-types). A key the template sets takes the template's
// value (placeholders resolved with `src/runtime-rs/Makefile` + `arch/x86_64-options.mk`, PREFIX
// /usr); a key the template leaves commented out takes what kata-types' `adjust_config` fills in
// (`src/libs/kata-types/src/config/{default.rs,hypervisor/*.rs,agent.rs,runtime.rs}`).
// Each value below names its source: "template" (+ Makefile variable) or "kata-types".
import type { AgentConfig, HypervisorConfig, KataConfig, RuntimeConfig } from './kata-config.js';

/** `/usr/share/kata-containers` (Makefile PKGDATADIR with PREFIX=/usr). */
const PKGDATADIR = '/usr/share/kata-containers';

/** Makefile QEMUPATH: QEMUBINDIR (/usr/bin) + QEMUCMD from arch/x86_64-options.mk. */
export const DEFAULT_QEMU_PATH = '/usr/bin/qemu-system-x86_64';

/** kata-types MAX_QEMU_VCPUS. */
export const MAX_QEMU_VCPUS = 256;
/** kata-types MIN_QEMU_MEMORY_SIZE_MB. */
export const MIN_QEMU_MEMORY_MIB = 64;
/** kata-types DEFAULT_QEMU_MEMORY_SIZE_MB: what `default_memory = 0` becomes. */
export const QEMU_ZERO_MEMORY_MIB = 128;
/** kata-types DEFAULT_QEMU_MEMORY_SLOTS: what a missing or zero `memory_slots` becomes. */
export const QEMU_DEFAULT_MEMORY_SLOTS = 128;

/**
 * `enable_annotations` as the shipped runtime-rs template sets it (@DEFENABLEANNOTATIONS@). Not a
 * default: a config without the key enables nothing (kata-types' default is an empty list).
 */
export const TEMPLATE_ENABLE_ANNOTATIONS: readonly string[] = [
  'enable_iommu',
  'virtio_fs_extra_args',
  'kernel_params',
  'kernel_verity_params',
  'default_vcpus',
  'default_memory',
];

function defaultHypervisor(): HypervisorConfig {
  return {
    name: 'qemu',
    path: DEFAULT_QEMU_PATH, // template @QEMUPATH@
    kernel: `${PKGDATADIR}/vmlinux.container`, // template @KERNELPATH_QEMU@ (KERNELTYPE_QEMU uncompressed)
    image: `${PKGDATADIR}/kata-containers.img`, // template @IMAGEPATH@
    initrd: '', // template: commented out
    machineType: 'q35', // template @MACHINETYPE@ (x86_64-options.mk)
    kernelParams: '', // template @KERNELPARAMS@ (empty on x86_64)
    defaultVcpus: '1', // template @DEFVCPUS_QEMU@ = 1
    defaultMaxVcpus: 0, // template @DEFMAXVCPUS_QEMU@ = 0 (host CPUs)
    overheadVcpus: '0', // kata-types default (no overhead unless configured)
    overheadMemoryMiB: 0, // kata-types default
    defaultMemoryMiB: 2048, // template @DEFMEMSZ@ = 2048
    defaultMaxMemoryMiB: 0, // template @DEFMAXMEMSZ@ = 0 (host memory)
    memorySlots: QEMU_DEFAULT_MEMORY_SLOTS, // template: commented out → kata-types qemu adjust_config = 128
    blockDeviceDriver: 'virtio-scsi', // template @DEFBLOCKSTORAGEDRIVER_QEMU@ (x86_64)
    blockDeviceAio: 'io_uring', // template @DEFBLOCKDEVICEAIO_QEMU@
    blockDeviceCacheDirect: false, // template: commented out, "Default false"
    blockDeviceCacheSet: false, // template: commented out, "Default false"
    blockDeviceCacheNoflush: false, // template: commented out, "Default false"
    blockDeviceLogicalSectorSize: 0, // kata-types BlockDeviceInfo default (hypervisor default)
    blockDevicePhysicalSectorSize: 0, // kata-types BlockDeviceInfo default
    disableBlockDeviceUse: false, // template @DEFDISABLEBLOCK@ = false
    sharedFs: 'virtio-fs', // template @DEFSHAREDFS_QEMU_VIRTIOFS@
    virtioFsDaemon: '/usr/libexec/virtiofsd', // template @DEFVIRTIOFSDAEMON@ = $(LIBEXECDIR)/virtiofsd
    virtioFsExtraArgs: ['--thread-pool-size=1', '-o', 'announce_submounts'], // template @DEFVIRTIOFSEXTRAARGS@
    virtioFsCache: 'auto', // template @DEFVIRTIOFSCACHE@ = auto
    virtioFsCacheSizeMiB: 0, // template @DEFVIRTIOFSCACHESIZE@ = 0 (no DAX)
    pcieRootPort: 0, // template: commented out, "Default 0"
    pcieSwitchPort: 0, // template: commented out, "Default 0"
    // kata-types DeviceInfo `#[serde(default)]`: absent → 0. The template sets @DEFBRIDGES@ = 1.
    defaultBridges: 0,
    hotplugVfio: 'no-port', // template comment: "The default setting is no-port"
    coldplugVfio: 'no-port', // template comment: "The default setting is no-port"
    rootless: false, // template: commented out
    // kata-types SecurityInfo: `#[serde(default)]`, so an absent key enables no annotation. The
    // template's list (TEMPLATE_ENABLE_ANNOTATIONS) applies only when a config file says so.
    enableAnnotations: [],
    validHypervisorPaths: [DEFAULT_QEMU_PATH], // template @QEMUVALIDHYPERVISORPATHS@
    initdata: '', // kata-types SecurityInfo default
    confidentialGuest: false, // template: commented out, "Default false"
    rootfsType: 'ext4', // template @DEFROOTFSTYPE@
    vmRootfsDriver: 'virtio-pmem', // template @VMROOTFSDRIVER_QEMU@ (x86_64)
    firmware: '', // template @FIRMWAREPATH@ (QEMUFW unset on x86_64)
    cpuFeatures: 'pmu=off', // template @CPUFEATURES@ (x86_64-options.mk)
    machineAccelerators: '', // template @MACHINEACCELERATORS@
    entropySource: '/dev/urandom', // kata-types DEFAULT_QEMU_ENTROPY_SOURCE (template: commented out)
    enableDebug: false, // template: commented out
    guestHookPath: '', // template: commented out
  };
}

function defaultAgent(): AgentConfig {
  return {
    name: 'kata', // template [agent.@PROJECT_TYPE@], PROJECT_TYPE = kata
    debug: false, // template: commented out
    dialTimeoutSecs: 45, // runtime-go template `dial_timeout = 45`
    dialTimeoutMs: 10, // kata-types agent.rs default_dial_timeout
    reconnectTimeoutMs: 3000, // kata-types agent.rs default_reconnect_timeout
    requestTimeoutMs: 30000, // kata-types agent.rs default_request_timeout
    kernelModules: [], // template `kernel_modules=[]`
    enableTracing: false, // template: commented out
  };
}

function defaultRuntime(): RuntimeConfig {
  return {
    enableDebug: false, // template: commented out
    internetworkingModel: 'tcfilter', // template @DEFNETWORKMODEL_QEMU@
    disableGuestSeccomp: true, // template @DEFDISABLEGUESTSECCOMP@ = true
    // reference-runtime-rs.md §16/17: template value true for qemu at HEAD 7c6ba40c54.
    sandboxCgroupOnly: true,
    staticSandboxResourceMgmt: false, // template @DEFSTATICRESOURCEMGMT_QEMU@ = false
    staticSandboxDefaultWorkloadMemMiB: 0, // runtime-go default (key absent from the qemu template)
    enablePprof: false, // template: commented out
    experimental: [], // template @DEFAULTEXPFEATURES@ = []
    experimentalForceGuestPull: false, // Makefile DEFFORCEGUESTPULL = false (runtime-go key)
    vfioMode: 'guest-kernel', // template @DEFVFIOMODE@
    disableNewNetns: false, // template: commented out
    dan: '/run/kata-containers/dans', // Makefile DEFDANCONF (runtime-go template `dan_conf`)
    kubeletRootDir: '/var/lib/kubelet', // kata-ts extension
    allowAnyCopyDirectory: false, // kata-ts extension
    copyWatchDebounceMs: 500, // kata-ts extension
  };
}

/** Kata's defaults for a QEMU sandbox; parsing an empty file gives the same. */
export function defaultKataConfig(): KataConfig {
  return { hypervisor: defaultHypervisor(), agent: defaultAgent(), runtime: defaultRuntime() };
}
