// `kata-ts run --config FILE BUNDLE [-- cmd…]`: create a sandbox whose own container is BUNDLE,
// run it, stream its stdout/stderr to ours, exit with its status, tear everything down.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { addContainer, pumpOutput, startContainer, wait, kill } from '../lifecycle/container.js';
import { createSandbox, deleteSandbox, type Sandbox } from '../lifecycle/sandbox.js';
import type { LifecycleError } from '../lifecycle/errors.js';
import {
  addStateRootOption,
  formatTimings,
  progressReporter,
  reportError,
  sandboxOptions,
  type LifecycleFlags,
} from './lifecycle-options.js';
import type { CommandContext } from './main.js';

interface RunFlags extends LifecycleFlags {
  readonly config: string;
  readonly id?: string;
  readonly timings?: boolean;
  readonly agentDetails?: boolean;
}

/** One stderr line from the agent's own GetGuestDetails answer: which agent ran, as it says. */
async function describeAgent(sb: Sandbox): Promise<string> {
  const r = await sb.agent.getGuestDetails({ memBlockSize: true });
  if (r.isErr()) return `agent: GetGuestDetails failed: ${r.error.message}\n`;
  const a = r.value.agentDetails;
  if (a === undefined) return 'agent: GetGuestDetails gave no agent details\n';
  const pid1 = a.initDaemon ? 'runs as PID 1' : 'not PID 1';
  return `agent: version ${a.version}, ${pid1}, storage handlers ${a.storageHandlers.join(',')}\n`;
}

/**
 * Forwards SIGINT/SIGTERM to the container while it runs; a second signal gives up on it (the
 * agent connection is closed, so the wait ends and the sandbox is torn down).
 */
function forwardSignals(sb: Sandbox, id: string): () => void {
  let received = 0;
  const handler = (sig: NodeJS.Signals) => {
    received++;
    if (received > 1) sb.agent.close();
    else void kill(sb, id, sig === 'SIGINT' ? 2 : 15);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

async function runContainer(sb: Sandbox, ctx: CommandContext): Promise<number | LifecycleError> {
  const id = sb.id;
  const added = await addContainer(sb, { id, bundle: sb.state.sandboxBundle });
  if (added.isErr()) return added.error;
  const started = await startContainer(sb, id);
  if (started.isErr()) return started.error;
  const unforward = forwardSignals(sb, id);
  const decoder = (sink: (t: string) => void) => {
    const d = new TextDecoder();
    return (b: Uint8Array) => sink(d.decode(b, { stream: true }));
  };
  const output = pumpOutput(sb, id, decoder(ctx.io.out), decoder(ctx.io.err));
  const status = await wait(sb, id);
  unforward();
  await Promise.race([output, new Promise((r) => setTimeout(r, 2_000).unref())]);
  return status.isErr() ? status.error : status.value;
}

export function registerRunCommand(program: Command, ctx: CommandContext): void {
  addStateRootOption(
    program
      .command('run')
      .description(
        'create a sandbox from BUNDLE, run its container, stream its output, exit with its status, tear down',
      )
      .requiredOption('--config <file>', 'Kata configuration.toml')
      .option('--id <id>', 'sandbox id (default: kata-<random>)')
      .option(
        '--timings',
        'print a timing table (plan, boot, hot-plug, container start, teardown) on stderr',
      )
      .option(
        '--agent-details',
        "print the guest agent's GetGuestDetails self-description on stderr",
      )
      .argument('<bundle>', 'OCI bundle directory')
      .argument('[cmd...]', 'replaces the bundle process args (after --)'),
  ).action(async (bundle: string, cmd: string[], flags: RunFlags) => {
    const sandboxId = flags.id ?? `kata-${randomBytes(4).toString('hex')}`;
    const options = { ...sandboxOptions(flags, ctx), onProgress: progressReporter(ctx) };
    const created = await createSandbox(
      { sandboxId, configPath: flags.config, bundle: path.resolve(bundle), args: cmd },
      options,
    );
    if (created.isErr()) return reportError(ctx, created.error);
    const sb = created.value;
    if (flags.agentDetails) ctx.io.err(await describeAgent(sb));
    const result = await runContainer(sb, ctx);
    const deleted = await deleteSandbox(sb);
    if (typeof result !== 'number') reportError(ctx, result);
    else ctx.exitCode = result;
    if (deleted.isErr()) reportError(ctx, deleted.error);
    if (flags.timings) ctx.io.err(formatTimings(sb.timings, sb.options.accel));
  });
}
