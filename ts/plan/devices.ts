// The agent's view of a block device (driver name, Storage.source, Device.id), and the entry
// point for everything block-device related in the planner.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';
import { BLOCK_DRIVERS, type BlockDriver } from '../config/kata-config.js';
import { AGENT_DRIVERS, type AgentBlockDriver } from './block-devices.js';

export * from './block-devices.js';
export * from './device-index.js';
export * from './device-names.js';
export * from './pci-path.js';

/** Addresses a device may carry; which one the agent reads depends on the driver. */
export interface DeviceAddresses {
  readonly pciPath?: string;
  readonly scsiAddr?: string;
  readonly ccwAddr?: string;
  readonly virtPath?: string;
}

/** `block_device_driver` → agent driver (reference `create_block_device_modern`). */
export function agentDriverFor(configDriver: string): Result<AgentBlockDriver, Problem> {
  if (!(BLOCK_DRIVERS as readonly string[]).includes(configDriver)) {
    const what = `unsupported driver type ${configDriver}`;
    return err(problem('plan', 'block-device', 'block_device_driver', configDriver, what));
  }
  return ok(AGENT_DRIVERS[configDriver as BlockDriver]);
}

/** Storage.source for a block volume (reference `agent_storage_source_from_block_config`). */
export function storageSource(
  agentDriver: string,
  device: DeviceAddresses,
): Result<string, Problem> {
  const missing = (what: string) =>
    err(problem('plan', 'block-device', 'storage source', agentDriver, what));
  switch (agentDriver) {
    case 'blk':
      return device.pciPath !== undefined
        ? ok(device.pciPath)
        : missing('block driver is blk but no pci path exists');
    case 'scsi':
      return device.scsiAddr !== undefined
        ? ok(device.scsiAddr)
        : missing('block driver is scsi but no scsi address exists');
    case 'blk-ccw':
      return device.ccwAddr !== undefined
        ? ok(device.ccwAddr)
        : missing('block driver is ccw but no ccw address exists');
    case 'mmioblk':
    case 'nvdimm':
      return ok(device.virtPath ?? '');
    default:
      return missing(`unsupported block driver ${agentDriver}`);
  }
}

/** Device.id for `linux.devices`: the first present of pci path, SCSI address, CCW address, virt path. */
export function agentDeviceId(device: DeviceAddresses): string {
  return device.pciPath ?? device.scsiAddr ?? device.ccwAddr ?? device.virtPath ?? '';
}
