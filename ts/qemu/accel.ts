// Which accelerator QEMU can use here. /dev/kvm may exist and open yet be unusable (or, under
// PVM, usable for paused VMs but unable to boot a stock kernel), so the probe starts a real
// paused VM with accel=kvm and asks `query-kvm`; anything short of that falls back to TCG.
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Accel } from './cmdline.js';
import { Vm } from './vm.js';

export interface AccelProbe {
  readonly accel: Accel;
  /** Why KVM was not used, when it was not. */
  readonly reason: string;
}

export const DEFAULT_QEMU = '/usr/bin/qemu-system-x86_64';

/** `KATA_TS_QEMU_ACCEL=kvm|tcg` forces the answer (e.g. TCG for guests PVM cannot boot). */
export async function probeAccel(binary = DEFAULT_QEMU, timeoutMs = 15_000): Promise<AccelProbe> {
  const forced = process.env.KATA_TS_QEMU_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: 'KATA_TS_QEMU_ACCEL' };
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch (e) {
    return { accel: 'tcg', reason: `/dev/kvm: ${e instanceof Error ? e.message : String(e)}` };
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-accel-'));
  const qmpSocket = path.join(dir, 'qmp.sock');
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-machine',
    'q35,accel=kvm',
    '-cpu',
    'host,-arch-capabilities',
    '-m',
    '64M',
    '-S',
    '-qmp',
    `unix:${qmpSocket},server=on,wait=off`,
  ];
  const vm = await Vm.spawn({
    binary,
    args,
    logPath: path.join(dir, 'qemu.log'),
    qmpSocket,
    startTimeoutMs: timeoutMs,
  });
  try {
    if (vm.isErr()) return { accel: 'tcg', reason: vm.error.message };
    const kvm = await vm.value.qmp.execute<{ enabled: boolean; present: boolean }>('query-kvm');
    if (kvm.isErr()) return { accel: 'tcg', reason: kvm.error.message };
    return kvm.value.enabled
      ? { accel: 'kvm', reason: '' }
      : { accel: 'tcg', reason: 'query-kvm: not enabled' };
  } finally {
    if (vm.isOk()) await vm.value.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

let cached: Promise<AccelProbe> | null = null;

/** probeAccel once per process. */
export function usableAccel(binary = DEFAULT_QEMU): Promise<AccelProbe> {
  cached ??= probeAccel(binary);
  return cached;
}
