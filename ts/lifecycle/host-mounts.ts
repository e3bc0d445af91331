// Host mounts of shared_fs = virtio-fs sandboxes, as runtime-rs makes them: the shared dir's `rw`
// is bind-mounted onto itself and made shared, then bound read-only onto `ro` as a slave, so
// binds made later in `rw` (container rootfs, volumes) appear in `ro`, which is what virtiofsd
// exports. Each mount is recorded before it is made; cleanup unmounts in reverse order (lazily,
// so a busy mount cannot block it) and refuses to remove a directory with mounts still below it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ContainerPlan, ResourcePlan } from '../plan/plan.js';
import { stepError, type LifecycleStep } from './errors.js';
import { StepFailure, type StateRecorder } from './state-recorder.js';

function run(args: string[]): string | null {
  try {
    execFileSync('mount', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    return null;
  } catch (e) {
    const x = e as { stderr?: Buffer; message: string };
    return x.stderr?.toString().trim() || x.message;
  }
}

/** Mount points at or below `dir` (from /proc/self/mountinfo, octal escapes decoded). */
export function mountsUnder(dir: string): string[] {
  const decode = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[4] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`));
}

/** Lazily unmounts every mount stacked at `target`; true when none is left. */
export function unmountAll(target: string): boolean {
  for (let i = 0; i < 16 && mountsUnder(target).includes(target); i++) {
    try {
      execFileSync('umount', ['-l', target], { stdio: 'ignore' });
    } catch {
      break;
    }
  }
  return !mountsUnder(target).includes(target);
}

class Mounter {
  constructor(
    private readonly rec: StateRecorder,
    private readonly step: LifecycleStep,
    private readonly containerId: string | null,
  ) {}

  /** Records `target`, runs each `mount` argv in order, marks it done. */
  mount(target: string, ...commands: string[][]): void {
    this.rec.update((s) => ({ ...s, mounts: [...s.mounts, { target, containerId: this.containerId, phase: 'intent' }] }));
    for (const args of commands) {
      const failed = run(args);
      if (failed !== null) throw new StepFailure(stepError(this.rec.state.sandboxId, this.step, `mount ${args.join(' ')}: ${failed}`));
    }
    this.rec.update((s) => ({ ...s, mounts: s.mounts.map((m) => (m.target === target && m.phase === 'intent' ? { ...m, phase: 'done' as const } : m)) }));
  }
}

/** A bind target of the source's kind: an empty file for a file, else a directory. */
function makeTarget(source: string, target: string): void {
  mkdirSync(path.dirname(target), { recursive: true });
  if (statSync(source).isDirectory()) mkdirSync(target, { recursive: true });
  else writeFileSync(target, '', { flag: 'a' });
}

/** `rw` self-bound and shared, `ro` its read-only slave (virtiofsd's root). */
export function mountSharedDirs(rec: StateRecorder, plan: ResourcePlan): void {
  const { sharedSandbox, sharedRw, sharedRo } = plan.hostDirs;
  rec.dir(sharedSandbox, 'intent');
  mkdirSync(sharedRw, { recursive: true, mode: 0o750 });
  mkdirSync(sharedRo, { recursive: true, mode: 0o750 });
  rec.dir(sharedSandbox, 'done');
  const m = new Mounter(rec, 'dirs', null);
  m.mount(sharedRw, ['--bind', sharedRw, sharedRw], ['--make-shared', sharedRw]);
  m.mount(sharedRo, ['--bind', sharedRw, sharedRo], ['--make-slave', sharedRo], ['-o', 'remount,bind,ro', sharedRo]);
}

/** The container's rootfs mount and bind, volume binds and mount points in the shared dir. */
export function mountContainerShares(rec: StateRecorder, c: ContainerPlan): void {
  const m = new Mounter(rec, 'copy', c.id);
  const { hostMount, sharedBind } = c.rootfs;
  if (hostMount) {
    mkdirSync(hostMount.target, { recursive: true });
    const opts = hostMount.options.length > 0 ? ['-o', hostMount.options.join(',')] : [];
    m.mount(hostMount.target, ['-t', hostMount.type, ...opts, hostMount.source, hostMount.target]);
  }
  if (sharedBind) {
    makeTarget(sharedBind.source, sharedBind.hostPath);
    m.mount(sharedBind.hostPath, ['--bind', sharedBind.source, sharedBind.hostPath]);
  }
  for (const b of c.sharedFsBinds) {
    if (b.action === 'reuse') continue;
    if (b.action === 'upgrade-rw') {
      m.mount(`${b.hostPath}`, ['-o', 'remount,bind,rw', b.hostPath]);
      continue;
    }
    makeTarget(b.hostSource, b.hostPath);
    const ro = b.readOnly ? [['-o', 'remount,bind,ro', b.hostPath]] : [];
    m.mount(b.hostPath, ['--bind', b.hostSource, b.hostPath], ...ro);
  }
  for (const p of c.sharedMountPoints) {
    mkdirSync(p.kind === 'dir' ? p.path : path.dirname(p.path), { recursive: true });
    if (p.kind === 'file') writeFileSync(p.path, '', { flag: 'a' });
  }
}
