// `kata-ts state <sid>` (the recorded state as JSON, with liveness checked against /proc) and
// `kata-ts cleanup <sid>` (undo everything the state records; idempotent, works after any crash).
import type { Command } from 'commander';
import { errorLine } from '../input/escape-text.js';
import { isAlive } from '../lifecycle/process-ref.js';
import { cleanup } from '../lifecycle/sandbox.js';
import type { SandboxState } from '../lifecycle/state-schema.js';
import { StateStore, stateRoot } from '../lifecycle/state-store.js';
import { addStateRootOption, reportError, type LifecycleFlags } from './lifecycle-options.js';
import type { CommandContext } from './main.js';

/** The state as a fresh process sees it: a recorded QEMU that is gone makes the sandbox failed. */
export function observedState(s: SandboxState): SandboxState {
  const qemu = s.vm?.qemu;
  if (s.vm?.phase === 'done' && qemu && !isAlive(qemu) && s.status !== 'failed') {
    return { ...s, status: 'failed', error: `QEMU (pid ${qemu.pid}) is gone` };
  }
  return s;
}

export function registerSandboxCommands(program: Command, ctx: CommandContext): void {
  addStateRootOption(
    program.command('state').description('print a sandbox state as JSON').argument('<sandbox-id>'),
  ).action((sid: string, flags: LifecycleFlags) => {
    const root = stateRoot(flags.stateRoot);
    if (root.isErr()) return reportError(ctx, root.error);
    const s = new StateStore(root.value).read(sid);
    if (s.isErr()) return reportError(ctx, s.error);
    ctx.io.out(`${JSON.stringify(observedState(s.value), null, 2)}\n`);
  });
  addStateRootOption(
    program
      .command('cleanup')
      .description(
        'remove everything a sandbox left (processes, cgroups, user, dirs, state); idempotent',
      )
      .argument('<sandbox-id>'),
  ).action(async (sid: string, flags: LifecycleFlags) => {
    const r = await cleanup(
      sid,
      flags.stateRoot !== undefined ? { stateRoot: flags.stateRoot } : {},
    );
    if (r.isErr()) return reportError(ctx, r.error);
    for (const a of r.value.actions) ctx.io.err(`${errorLine(sid, a)}\n`);
  });
}
