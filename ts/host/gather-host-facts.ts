// Reads the host facts the planner needs. The only I/O of `kata-ts plan` besides reading inputs.
import {
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statfsSync,
  statSync,
  type Stats,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BlockDeviceFact, HostFacts, PathFact, PathKind } from '../plan/host-facts.js';
import type { ProtectedPlatform } from '../plan/initdata.js';
import { isConfigmap, isSecret } from '../plan/k8s-paths.js';
import { WATCHABLE_FILE_LIMIT } from '../plan/volumes-watchable.js';
import type { RootfsMount } from '../plan/rootfs.js';
import type { OciSpec } from '../spec/oci-spec.js';

/** v2 when /sys/fs/cgroup is the unified hierarchy; v1 for legacy and hybrid layouts. */
export function detectCgroupVersion(root = '/sys/fs/cgroup'): 'v1' | 'v2' {
  return existsSync(`${root}/cgroup.controllers`) ? 'v2' : 'v1';
}

/** Confidential-guest support the host offers (TDX, SEV-SNP, s390x SE, Arm CCA), else none. */
export function detectGuestProtection(): ProtectedPlatform {
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return '';
    }
  };
  if (read('/sys/module/kvm_intel/parameters/tdx') === 'Y') return 'tdx';
  if (read('/sys/module/kvm_amd/parameters/sev_snp') === 'Y') return 'snp';
  if (read('/sys/firmware/uv/prot_virt_host') === '1') return 'se';
  return 'none';
}

function blockDevice(major: number, minor: number): BlockDeviceFact | null {
  const sys = `/sys/dev/block/${major}:${minor}`;
  try {
    const name = realpathSync(sys).split('/').pop()!;
    const ro = readFileSync(`${sys}/ro`, 'utf8').trim() === '1';
    return { path: `/dev/${name}`, readOnly: ro };
  } catch {
    return null;
  }
}

// statfs f_type magic numbers (linux/magic.h) of the filesystems the planner cares about.
const FS_MAGIC: Readonly<Record<number, string>> = {
  0x01021994: 'tmpfs',
  0xef53: 'ext4',
  0x58465342: 'xfs',
  0x794c7630: 'overlay',
  0x9123683e: 'btrfs',
};

function kindOf(st: Stats): PathKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isBlockDevice()) return 'block';
  if (st.isCharacterDevice()) return 'char';
  if (st.isFIFO()) return 'fifo';
  return 'socket';
}

/** glibc `major()` / `minor()` of a dev_t below 2^32. */
function splitRdev(rdev: number): { major: number; minor: number } {
  return { major: (rdev >>> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/** stat (following symlinks), realpath and statfs of one path; null when it does not resolve. */
export function pathFactOf(p: string): PathFact | null {
  let st: Stats;
  try {
    st = statSync(p);
  } catch {
    return null;
  }
  const kind = kindOf(st);
  const fact: { -readonly [K in keyof PathFact]: PathFact[K] } = {
    kind,
    mode: st.mode,
    uid: st.uid,
    gid: st.gid,
    ino: st.ino,
  };
  if (kind === 'block' || kind === 'char') fact.rdev = splitRdev(st.rdev);
  try {
    fact.realpath = realpathSync(p);
  } catch {
    // stat succeeded, so this is a race; leave the path unresolved.
  }
  try {
    const fs = statfsSync(p);
    const type = FS_MAGIC[fs.type];
    if (type !== undefined) fact.fsType = type;
    fact.fsSizeBytes = fs.bsize * fs.blocks;
  } catch {
    // no statfs: size and type unknown
  }
  return fact;
}

/**
 * kata-types `count_files`: regular entries below `p`, following symlinks (a file counts 1);
 * -1 once above `limit`; 0 when unreadable. Depth-capped against symlink loops.
 */
export function countFiles(p: string, limit: number, depth = 0): number {
  try {
    if (!statSync(p).isDirectory()) return 1;
    if (depth > 16) return -1;
    let n = 0;
    for (const name of readdirSync(p)) {
      const child = path.join(p, name);
      let isDir = false;
      try {
        isDir = statSync(child).isDirectory();
      } catch {
        // a dangling symlink counts as a file, as Rust's `is_dir()` is false for it
      }
      if (isDir) {
        const inc = countFiles(child, limit - n, depth + 1);
        if (inc === -1) return -1;
        n += inc;
      } else {
        n += 1;
      }
      if (n > limit) return -1;
    }
    return n;
  } catch {
    return 0;
  }
}

/** Inputs whose host paths are looked at. */
export interface HostFactsRequest {
  readonly specs: readonly OciSpec[];
  readonly rootfsMounts?: readonly (readonly RootfsMount[])[];
  readonly kubeletRootDir?: string;
}

/** Path facts for mount sources, `/dev/…` destinations, rootfs mount sources and the kubelet root. */
export function gatherPathFacts(request: HostFactsRequest): {
  paths: Record<string, PathFact>;
  blockDevices: Record<string, BlockDeviceFact>;
} {
  const wanted = new Set<string>();
  for (const spec of request.specs) {
    for (const m of spec.mounts) {
      if (m.source !== undefined && path.isAbsolute(m.source)) wanted.add(m.source);
      if (m.destination.startsWith('/dev/')) wanted.add(m.destination);
    }
  }
  for (const mounts of request.rootfsMounts ?? [])
    for (const m of mounts) if (path.isAbsolute(m.source)) wanted.add(m.source);
  if (request.kubeletRootDir !== undefined) wanted.add(request.kubeletRootDir);
  const paths: Record<string, PathFact> = {};
  const blockDevices: Record<string, BlockDeviceFact> = {};
  for (const p of wanted) {
    const fact = pathFactOf(p);
    if (fact === null) continue;
    paths[p] =
      isSecret(p) || isConfigmap(p)
        ? { ...fact, fileCount: countFiles(p, WATCHABLE_FILE_LIMIT) }
        : fact;
    if (fact.kind === 'block' && fact.rdev !== undefined) {
      const dev = blockDevice(fact.rdev.major, fact.rdev.minor);
      if (dev) blockDevices[`${fact.rdev.major}:${fact.rdev.minor}`] = dev;
    }
  }
  return { paths, blockDevices };
}

/** Gathers facts for planning the given specs (and rootfs mounts) on this machine. */
export function gatherHostFacts(
  specs: readonly OciSpec[],
  extra: Omit<HostFactsRequest, 'specs'> = {},
): HostFacts {
  const blockDevices: Record<string, BlockDeviceFact> = {};
  for (const spec of specs) {
    for (const d of spec.linux.devices) {
      if (d.type !== 'b') continue;
      const fact = blockDevice(d.major, d.minor);
      if (fact) blockDevices[`${d.major}:${d.minor}`] = fact;
    }
  }
  const gathered = gatherPathFacts({ specs, ...extra });
  return {
    cgroupVersion: detectCgroupVersion(),
    hostCpus: os.availableParallelism(),
    hostMemoryMiB: Math.floor(os.totalmem() / (1024 * 1024)),
    guestProtection: detectGuestProtection(),
    blockDevices: { ...gathered.blockDevices, ...blockDevices },
    paths: gathered.paths,
  };
}
