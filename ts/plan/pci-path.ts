// PCI slots and paths as the Kata agent reads them: `xx/yy/zz`, one two-digit hex slot per bus
// hop from the root bus to the device (reference: runtime-rs `hypervisor/src/device/pci_path.rs`,
// itself a port of runtime-go `pcipath.go`).
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';

/** The PCI spec gives a slot (device number) 5 bits: 0x00..0x1f. */
export const MAX_PCI_SLOT = 0x1f;

/** A slot number on one PCI bus, 0..31. Minted only by `pciSlot`. */
export type PciSlot = number & { readonly __brand: 'PciSlot' };

/** Slots from the root bus to the device; never empty. Minted only here. */
export type PciPath = readonly [PciSlot, ...PciSlot[]];

function slotProblem(value: unknown, what: string): Problem {
  return problem('plan', 'pci-path', 'pci slot', value, what);
}

/** Parses a slot from its hex text (`"1f"`) or checks a number (`31`). */
export function pciSlot(value: string | number): Result<PciSlot, Problem> {
  if (typeof value === 'string') {
    if (!/^[0-9a-fA-F]{1,2}$/.test(value)) {
      return err(
        slotProblem(value, `invalid PCI slot ${JSON.stringify(value)}: expected 1 or 2 hex digits`),
      );
    }
    return pciSlot(Number.parseInt(value, 16));
  }
  if (!Number.isInteger(value) || value < 0 || value > MAX_PCI_SLOT) {
    return err(slotProblem(value, `PCI slot ${value} is outside 0..${MAX_PCI_SLOT}`));
  }
  return ok(value as PciSlot);
}

/** `%02x`, as the agent and QEMU's `addr=` expect. */
export function formatPciSlot(slot: PciSlot): string {
  return slot.toString(16).padStart(2, '0');
}

/** Builds a path from slot numbers, checking each. */
export function pciPathOf(slots: readonly number[]): Result<PciPath, Problem> {
  const checked: PciSlot[] = [];
  for (const s of slots) {
    const r = pciSlot(s);
    if (r.isErr()) return err(r.error);
    checked.push(r.value);
  }
  const [first, ...rest] = checked;
  if (first === undefined)
    return err(problem('plan', 'pci-path', 'pci path', '', 'PCI path is empty'));
  return ok([first, ...rest]);
}

/** Parses `"01/0a/05"`. */
export function parsePciPath(text: string): Result<PciPath, Problem> {
  if (text === '') return err(problem('plan', 'pci-path', 'pci path', text, 'PCI path is empty'));
  const slots: PciSlot[] = [];
  for (const part of text.split('/')) {
    const r = pciSlot(part);
    if (r.isErr()) {
      const what = `invalid PCI path ${JSON.stringify(text)}: ${r.error.message}`;
      return err(problem('plan', 'pci-path', 'pci path', text, what));
    }
    slots.push(r.value);
  }
  return pciPathOf(slots);
}

/** `"01/0a/05"`. */
export function formatPciPath(path: PciPath): string {
  return path.map(formatPciSlot).join('/');
}

/** The device's own slot on its bus (the last hop). */
export function deviceSlot(path: PciPath): PciSlot {
  return path[path.length - 1] ?? path[0];
}

/** The slot of the most upstream bridge on the root bus (the first hop). */
export function rootSlot(path: PciPath): PciSlot {
  return path[0];
}
