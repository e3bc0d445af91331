// Options shared by the lifecycle commands (run, create, …, cleanup). The shipped CLI reads no
// test hooks: a caller of `main` (the test entry point __test__/fixtures/kata-ts-test-cli.ts)
// may pass library options that override the defaults, e.g. a host-side agent (`agentTarget`) or
// a VM kept paused (`paused`).
import { Option, type Command } from 'commander';
import type { LifecycleError } from '../lifecycle/errors.js';
import { formatLifecycleError } from '../lifecycle/errors.js';
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import type { CommandContext } from './main.js';

export interface LifecycleFlags {
  readonly stateRoot?: string;
}

export function addStateRootOption(cmd: Command): Command {
  return cmd.addOption(
    new Option(
      '--state-root <dir>',
      'where sandbox state lives (env KATA_TS_STATE_ROOT, default /run/kata-ts)',
    ),
  );
}

/** The lifecycle options of a command: its flags over the options `main` was given. */
export function sandboxOptions(
  flags: LifecycleFlags,
  ctx: Pick<CommandContext, 'sandbox'>,
): SandboxOptions {
  return {
    ...ctx.sandbox,
    ...(flags.stateRoot !== undefined ? { stateRoot: flags.stateRoot } : {}),
  };
}

/** Prints the error and sets the exit code: 2 for bad input, 1 otherwise. */
export function reportError(ctx: CommandContext, e: LifecycleError): void {
  for (const line of formatLifecycleError(e)) ctx.io.err(`${line}\n`);
  ctx.exitCode = e.kind === 'input' || e.kind === 'exists' ? 2 : 1;
}

/** "booting VM (tcg)… 2.41 s" on a terminal; nothing otherwise. */
export function progressReporter(
  ctx: CommandContext,
  isTty = process.stderr.isTTY === true,
): SandboxOptions['onProgress'] {
  if (!isTty) return undefined;
  const started = new Map<string, number>();
  return (step, phase) => {
    if (phase === 'start') {
      started.set(step, performance.now());
      ctx.io.err(`kata-ts: ${step}…`);
    } else {
      const ms = performance.now() - (started.get(step) ?? performance.now());
      ctx.io.err(` ${(ms / 1000).toFixed(2)} s\n`);
    }
  };
}

/** The timing table (`--timings`): phase and ms. */
export function formatTimings(timings: Readonly<Record<string, number>>, accel: string): string {
  const order = [
    'plan',
    'cgroups',
    'boot',
    'createSandbox',
    'hotplug',
    'copy',
    'createContainer',
    'start',
    'teardown',
  ];
  const rows = order
    .filter((k) => timings[k] !== undefined)
    .map((k) => `  ${k.padEnd(16)} ${timings[k]!.toFixed(0).padStart(7)} ms`);
  return `timings (accel ${accel}):\n${rows.join('\n')}\n`;
}
