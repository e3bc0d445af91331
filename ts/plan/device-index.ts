// Device-manager bookkeeping: block device indices and attach reference counts (reference:
// runtime-rs `device_manager.rs` `SharedInfo::declare_index/release_index`, `device/util.rs`
// `do_increase_count`/`do_decrease_count`).
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';

/**
 * Hands out device indices: the smallest released index first, otherwise the next new one.
 * The reference keeps released indices sorted descending and pops the last; keeping them sorted
 * ascending and taking the first is the same order. Deterministic: no randomness, no clock.
 */
export class IndexAllocator {
  #next = 0;
  /** Released indices, ascending. */
  #released: number[] = [];

  /** Takes an index. */
  declare(): number {
    const reused = this.#released.shift();
    if (reused !== undefined) return reused;
    return this.#next++;
  }

  /** Gives an index back; false (and no change) when it was not handed out or already released. */
  release(index: number): boolean {
    if (
      !Number.isInteger(index) ||
      index < 0 ||
      index >= this.#next ||
      this.#released.includes(index)
    )
      return false;
    const at = this.#released.findIndex((i) => i > index);
    this.#released.splice(at === -1 ? this.#released.length : at, 0, index);
    return true;
  }

  /** True when `index` is currently handed out. */
  inUse(index: number): boolean {
    return (
      Number.isInteger(index) && index >= 0 && index < this.#next && !this.#released.includes(index)
    );
  }
}

/**
 * Attach counts are u64 in the reference; we keep them as bigint so "u64::MAX + 1" is an exact,
 * testable overflow rather than a float that silently stops counting past 2^53.
 */
export const MAX_ATTACH_COUNT = (1n << 64n) - 1n;

function countProblem(count: bigint, what: string): Problem {
  return problem('plan', 'block-device', 'attach count', count.toString(), what);
}

export interface AttachIncrease {
  /** False: this is the first attach, plug the device. True: it is already in the guest. */
  readonly alreadyAttached: boolean;
  readonly count: bigint;
}

export interface AttachDecrease {
  /** False: this was the last user, unplug the device. True: others still use it. */
  readonly stillAttached: boolean;
  readonly count: bigint;
}

/** One more user of a device. */
export function increaseAttachCount(count: bigint): Result<AttachIncrease, Problem> {
  if (count < 0n) return err(countProblem(count, `invalid device reference count ${count}`));
  if (count >= MAX_ATTACH_COUNT) return err(countProblem(count, 'device reference count overflow'));
  const next = count + 1n;
  return ok({ alreadyAttached: next !== 1n, count: next });
}

/** One user fewer. */
export function decreaseAttachCount(count: bigint): Result<AttachDecrease, Problem> {
  if (count <= 0n) return err(countProblem(count, 'The device is not attached'));
  if (count > MAX_ATTACH_COUNT) return err(countProblem(count, 'device reference count overflow'));
  const next = count - 1n;
  return ok({ stillAttached: next !== 0n, count: next });
}
