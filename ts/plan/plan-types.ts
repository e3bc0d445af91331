// The plan's data types: what the planner takes (bundles, config, host facts) and what it
// returns. Plain JSON-serializable data (`kata-ts plan` prints it); every layer above the
// planner reads these, so they live apart from the planner's code.
import type { JsonValue } from '@bufbuild/protobuf';
import type { KataConfig } from '../config/kata-config.js';
import type { HostPath } from '../paths.js';
import type { ContainerType } from '../spec/container-type.js';
import type { OciSpec } from '../spec/oci-spec.js';
import type { CgroupPlan } from './cgroups.js';
import type { CopyStep } from './copy-volume.js';
import type { BlockDevice } from './devices.js';
import type { HostFacts } from './host-facts.js';
import type { HostDirs, SharedMountPoint } from './host-dirs.js';
import type { InitdataPlan } from './initdata.js';
import type { Port } from './ports.js';
import type { RootfsMount, RootfsPlan } from './rootfs.js';
import type { CopiedVolume } from './volume-manager.js';
import type { VolumeKind } from './volumes.js';
import type { RandomHex } from './volumes-paths.js';
import type { SharedFsBind } from './volumes-shared-fs.js';

/** A container (or the sandbox's own container) as given: its id, bundle and parsed spec. */
export interface BundleInput {
  readonly id: string;
  readonly bundleDir: string;
  readonly spec: OciSpec;
  /** Absolute bundle path (the bundle_path annotation); defaults to `bundleDir`. */
  readonly bundlePath?: string;
  /** Rootfs mounts as a shim receives them (`rootfs-mounts.json`); absent or empty: root.path over the shared fs. */
  readonly rootfsMounts?: readonly RootfsMount[];
}

export interface PlanInput {
  readonly config: KataConfig;
  /** Path of the configuration file, for errors. */
  readonly configSource: string;
  readonly sandbox: BundleInput;
  /** Further containers, in the order they are added. */
  readonly containers: readonly BundleInput[];
  readonly host: HostFacts;
  /** Random name parts (16-hex copy names, 8-hex share names); default: a deterministic sequence. */
  readonly random?: RandomHex;
}

export interface ContainerPlan {
  readonly id: string;
  readonly type: ContainerType;
  readonly vcpusAfter: number;
  readonly memoryMiBAfter: number;
  /** Hot-plugged for this container, in order: rootfs, volumes, linux.devices. */
  readonly blockDevices: readonly BlockDevice[];
  readonly rootfs: RootfsPlan;
  /** What each spec mount became, by index. */
  readonly volumes: readonly { readonly destination: string; readonly kind: VolumeKind }[];
  /** Host entries copied into the guest before the container starts (shared_fs = none). */
  readonly copies: readonly CopyStep[];
  /** Binds into the sandbox shared dir (shared_fs = virtio-fs). */
  readonly sharedFsBinds: readonly SharedFsBind[];
  /** Block-volume mount points created in `hostDirs.sharedRw` before the agent mounts them. */
  readonly sharedMountPoints: readonly SharedMountPoint[];
  /** CreateContainerRequest, proto3 canonical JSON. */
  readonly createContainer: JsonValue;
}

/** The sandbox's shared dir: `rw` (binds are made here) and `ro` (its read-only view, exported). */
export interface SharedDirs {
  readonly sandbox: HostPath;
  readonly rw: HostPath;
  readonly ro: HostPath;
}

export interface ResourcePlan {
  readonly sandboxId: string;
  /** The rootless dir prefixing every host dir when the VMM runs rootless; null otherwise. */
  readonly rootlessDir: HostPath | null;
  /** The sandbox's host directories (rootless-prefixed when rootless). */
  readonly hostDirs: HostDirs;
  readonly vcpus: { readonly boot: number; readonly max: number; readonly exact: string };
  readonly memoryMiB: number;
  readonly maxMemoryMiB: number;
  /**
   * Guest kernel parameters: the config's `kernel_params` with an allowed `kernel_params`
   * annotation merged in (kata-types BootInfo::replace_kernel_params). QEMU's -append uses these.
   */
  readonly kernelParams: string;
  /** The cgroup plan plus the sandbox cpuset/mems (union of the containers', canonical; "" = unset). */
  readonly cgroups: CgroupPlan & { readonly cpuset: string; readonly mems: string };
  readonly ports: readonly Port[];
  readonly coldplugDevices: readonly BlockDevice[];
  readonly initdata: InitdataPlan | null;
  /** The sandbox's own container first, then the others in order. */
  readonly containers: readonly ContainerPlan[];
  readonly warnings: readonly string[];
  readonly shmSizeBytes: number;
  /** Copied directories after all containers were added (VolumeManager state). */
  readonly copyVolumes: readonly CopiedVolume[];
  /** Host dirs shared with the guest (shared_fs = virtio-fs), mounted before QEMU starts; null: none. */
  readonly sharedDirs: SharedDirs | null;
  /** CreateSandboxRequest, proto3 canonical JSON. */
  readonly createSandbox: JsonValue;
}
