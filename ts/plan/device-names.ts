// Names and addresses derived from a block device's index: guest disk names, SCSI id/lun, pmem
// and CCW addresses. Pure arithmetic, mirroring the reference where it has a function for it.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';

function indexProblem(index: number | bigint, what: string): Problem {
  return problem('plan', 'block-device', 'index', String(index), what);
}

/**
 * Linux's virtio-blk naming (`virtblk_name_format`): bijective base 26, `0 → a`, `25 → z`,
 * `26 → aa`. The reference (`device/util.rs::get_virt_drive_name`) caps the suffix at
 * DISK_NAME_LEN (32) minus the 2-letter prefix; we keep that cap, reachable only with bigint.
 */
export function virtDriveName(
  index: number | bigint,
  prefix: 'vd' | 'sd' = 'vd',
): Result<string, Problem> {
  if (typeof index === 'number' && !Number.isSafeInteger(index)) {
    return err(indexProblem(index, 'Index must be an integer'));
  }
  let n = BigInt(index);
  if (n < 0n) return err(indexProblem(index, 'Index cannot be negative'));
  const maxLetters = 32 - prefix.length;
  const letters: string[] = [];
  while (letters.length < maxLetters && n >= 0n) {
    letters.push(String.fromCharCode(0x61 + Number(n % 26n)));
    n = n / 26n - 1n;
  }
  if (n >= 0n) return err(indexProblem(index, 'Index not supported'));
  return ok(prefix + letters.reverse().join(''));
}

/** Highest index that still fits a SCSI id and lun of 8 bits each (Go `maxSCSIDevices`). */
export const MAX_SCSI_INDEX = 65535;

/** Where a virtio-scsi disk sits: QEMU `scsi-id`/`lun`, and `"<id>:<lun>"` for the agent. */
export interface ScsiAddress {
  readonly scsiId: number;
  readonly lun: number;
  /** `"<id>:<lun>"`: the agent's Storage.source and Device.id. */
  readonly address: string;
}

/** id = index / 256, lun = index % 256 (Go `GetSCSIIdLun`, RS `qmp.rs` hotplug). */
export function scsiAddress(index: number): Result<ScsiAddress, Problem> {
  if (!Number.isSafeInteger(index)) return err(indexProblem(index, 'Index must be an integer'));
  if (index < 0) return err(indexProblem(index, 'Index cannot be negative'));
  if (index > MAX_SCSI_INDEX) {
    return err(
      indexProblem(
        index,
        `Index cannot be greater than ${MAX_SCSI_INDEX}, maximum of ${MAX_SCSI_INDEX} devices are supported`,
      ),
    );
  }
  const scsiId = index >> 8;
  const lun = index & 0xff;
  return ok({ scsiId, lun, address: `${scsiId}:${lun}` });
}

/** Guest node of the n-th virtio-pmem device (pmem devices count on their own). */
export function pmemVirtPath(n: number): string {
  return `/dev/pmem${n}`;
}

/**
 * virtio-blk-ccw device numbers. Block devices take `CCW_BLOCK_DEVNO_BASE + index`, leaving
 * 0x0000–0x000f to fixed devices (agent channel, shared fs). QEMU names the device
 * `fe.0.<devno>` (the virtual channel subsystem 0xfe); the guest without MCSS-E sees it as
 * `0.0.<devno>`, which is what the agent matches.
 */
export const CCW_BLOCK_DEVNO_BASE = 0x10;
export const MAX_CCW_DEVNO = 0xffff;

export interface CcwAddress {
  /** QEMU `devno=` value, `fe.0.xxxx`. */
  readonly qemuDevno: string;
  /** Guest bus id, `0.0.xxxx` (agent Storage.source for `blk-ccw`). */
  readonly address: string;
}

/** CCW address of the block device with this index. */
export function ccwAddress(index: number): Result<CcwAddress, Problem> {
  if (!Number.isSafeInteger(index) || index < 0)
    return err(indexProblem(index, 'Index cannot be negative'));
  const devno = CCW_BLOCK_DEVNO_BASE + index;
  if (devno > MAX_CCW_DEVNO) {
    return err(
      indexProblem(index, `Index cannot be greater than ${MAX_CCW_DEVNO - CCW_BLOCK_DEVNO_BASE}`),
    );
  }
  const hex = devno.toString(16).padStart(4, '0');
  return ok({ qemuDevno: `fe.0.${hex}`, address: `0.0.${hex}` });
}
