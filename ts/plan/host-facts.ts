// Host facts: everything the pure planner needs to know about the machine, gathered by the shell
// (ts/host/gather-host-facts.ts) or given as JSON (`kata-ts plan --host-facts FILE`).
import type { ProtectedPlatform } from './initdata.js';
import type { CgroupVersion } from './cgroups.js';

export interface BlockDeviceFact {
  /** Host device node, e.g. `/dev/sdb`. */
  readonly path: string;
  readonly readOnly: boolean;
}

/** What `stat` (following symlinks) says a path is; `missing` when it does not resolve. */
export type PathKind = 'file' | 'dir' | 'block' | 'char' | 'fifo' | 'socket' | 'missing';

/** `stat`, `realpath` and (for tmpfs sizes) `statfs` of one host path named by a spec or rootfs mount. */
export interface PathFact {
  readonly kind: PathKind;
  /** `st_mode` (type and permission bits). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly ino: number;
  /** Block/char devices: the device number. */
  readonly rdev?: { readonly major: number; readonly minor: number };
  /** The canonical path (symlinks and `..` resolved); absent when it does not resolve. */
  readonly realpath?: string;
  /** Filesystem type of the path from statfs (`tmpfs`, `ext4`, …), when known. */
  readonly fsType?: string;
  /** statfs blocks × block size: the size of the filesystem holding the path (tmpfs size limits). */
  readonly fsSizeBytes?: number;
  /**
   * kata-types `count_files(path, 8)` for configmap/secret volume paths: files below the path
   * (symlinks followed; a file counts 1), -1 above 8. Decides virtio-fs watchable mounts.
   */
  readonly fileCount?: number;
}

export interface HostFacts {
  readonly cgroupVersion: CgroupVersion;
  readonly hostCpus: number;
  readonly hostMemoryMiB: number;
  readonly guestProtection: ProtectedPlatform;
  /** Block devices by `major:minor`, for the devices the specs and rootfs mounts name. */
  readonly blockDevices: Readonly<Record<string, BlockDeviceFact>>;
  /**
   * Mount sources, `/dev/…` mount destinations, rootfs mount sources and the kubelet root, keyed
   * by the path exactly as written in the input. A path with no entry is treated as missing.
   */
  readonly paths?: Readonly<Record<string, PathFact>>;
  /**
   * The rootless dir: `XDG_RUNTIME_DIR` of the rootless VMM user (`/run/user/<uid>`). Required
   * when rootless is on (config or annotation); every host dir of the plan moves below it.
   */
  readonly rootlessDir?: string;
}

/** The fact for `p`, or a `missing` fact. */
export function pathFact(host: HostFacts, p: string): PathFact {
  const fact = host.paths !== undefined && Object.hasOwn(host.paths, p) ? host.paths[p] : undefined;
  return fact ?? { kind: 'missing', mode: 0, uid: 0, gid: 0, ino: 0 };
}

/** Facts for tests and scripting: a v1 host with 8 CPUs, 16 GiB, no TEE. */
export const EXAMPLE_HOST_FACTS: HostFacts = {
  cgroupVersion: 'v1',
  hostCpus: 8,
  hostMemoryMiB: 16384,
  guestProtection: 'none',
  blockDevices: {},
  paths: {},
};
