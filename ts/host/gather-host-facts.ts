// Reads the host facts the planner needs. The only I/O of `kata-ts plan` besides reading inputs.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import os from 'node:os';
import type { HostFacts, BlockDeviceFact } from '../plan/host-facts.js';
import type { ProtectedPlatform } from '../plan/initdata.js';
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

/** Gathers facts for planning the given specs on this machine. */
export function gatherHostFacts(specs: readonly OciSpec[]): HostFacts {
  const blockDevices: Record<string, BlockDeviceFact> = {};
  for (const spec of specs) {
    for (const d of spec.linux.devices) {
      if (d.type !== 'b') continue;
      const fact = blockDevice(d.major, d.minor);
      if (fact) blockDevices[`${d.major}:${d.minor}`] = fact;
    }
  }
  return {
    cgroupVersion: detectCgroupVersion(),
    hostCpus: os.availableParallelism(),
    hostMemoryMiB: Math.floor(os.totalmem() / (1024 * 1024)),
    guestProtection: detectGuestProtection(),
    blockDevices,
  };
}
