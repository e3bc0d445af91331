// Host files a sandbox needs before QEMU starts, recorded in its state: the initdata image (the
// plan's bytes, written atomically with mode 0600 in its own dir). And what the lifecycle cannot
// run yet, refused up front with the config key named rather than failing inside the guest.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { KataConfig } from '../config/kata-config.js';
import type { ResourcePlan } from '../plan/plan.js';
import type { RootlessUser } from '../rootless/index.js';
import { stepError, type LifecycleError } from './errors.js';
import { giveToVmmUser } from './rootless-vmm.js';
import { StepFailure, type StateRecorder } from './state-recorder.js';

/** Config the lifecycle does not carry out yet; one line per key, as input errors. */
export function unsupportedConfig(sandboxId: string, configPath: string, config: KataConfig): LifecycleError | null {
  const lines: string[] = [];
  const h = config.hypervisor;
  if (h.sharedFs !== 'none' && h.sharedFs !== 'virtio-fs') {
    lines.push(`kata-ts: ${configPath}: hypervisor.qemu.shared_fs: the sandbox lifecycle runs "none" and "virtio-fs", not ${JSON.stringify(h.sharedFs)}`);
  }
  return lines.length > 0 ? { kind: 'input', sandboxId, lines, message: lines.join('; ') } : null;
}

/**
 * Writes the plan's initdata image (if any) where the plan put it; the dir is recorded first. With
 * a rootless VMM the image belongs to its user (QEMU opens it), in a dir prepareVmmDirs made.
 */
export function writeInitdataImage(rec: StateRecorder, plan: ResourcePlan, vmmUser: RootlessUser | null = null): void {
  if (plan.initdata === null) return;
  const file = plan.initdata.hostPath;
  const dir = path.dirname(file);
  rec.dir(dir, 'intent');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = `${file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, Buffer.from(plan.initdata.imageBase64, 'base64'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (vmmUser !== null) giveToVmmUser(rec.state.sandboxId, tmp, vmmUser);
    renameSync(tmp, file);
  } catch (e) {
    if (e instanceof StepFailure) throw e;
    throw new StepFailure(stepError(rec.state.sandboxId, 'dirs', `initdata image ${file}: ${(e as Error).message}`));
  }
  rec.dir(dir, 'done');
}
