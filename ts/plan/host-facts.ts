// Host facts: everything the pure planner needs to know about the machine, gathered by the shell
// (ts/host/gather-host-facts.ts) or given as JSON (`kata-ts plan --host-facts FILE`).
import type { ProtectedPlatform } from './initdata.js';
import type { CgroupVersion } from './cgroups.js';

export interface BlockDeviceFact {
  /** Host device node, e.g. `/dev/sdb`. */
  readonly path: string;
  readonly readOnly: boolean;
}

export interface HostFacts {
  readonly cgroupVersion: CgroupVersion;
  readonly hostCpus: number;
  readonly hostMemoryMiB: number;
  readonly guestProtection: ProtectedPlatform;
  /** Block devices by `major:minor`, for the devices the specs name. */
  readonly blockDevices: Readonly<Record<string, BlockDeviceFact>>;
}

/** Facts for tests and scripting: a v1 host with 8 CPUs, 16 GiB, no TEE. */
export const EXAMPLE_HOST_FACTS: HostFacts = {
  cgroupVersion: 'v1',
  hostCpus: 8,
  hostMemoryMiB: 16384,
  guestProtection: 'none',
  blockDevices: {},
};
