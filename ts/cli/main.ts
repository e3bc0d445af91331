// `kata-ts` command line. Exit codes: 0 success, 2 bad input or usage, 1 internal failure.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import { errorLine, safeLine } from '../input/escape-text.js';
import { createLogger, LOG_LEVELS, levelFromEnv, type LogLevel } from '../log.js';
import { registerPlanCommand } from './plan-command.js';
import { registerVcpusCommand } from './vcpus-command.js';
import { registerRunCommand } from './run-command.js';
import { registerSandboxCommands } from './sandbox-commands.js';
import { registerShimCommands } from './shim-commands.js';

export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

const processIo: CliIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/** Version of the kata-ts package this code belongs to (ts/cli and dist/cli are both two levels down). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export interface CommandContext {
  readonly io: CliIo;
  /** Set by the command: the exit status. */
  exitCode: number;
  readonly logLevel: () => LogLevel;
  /** Library options under the lifecycle commands' flags (from `main`'s caller; none when shipped). */
  readonly sandbox: Partial<SandboxOptions>;
}

export interface CliOptions {
  /** Lifecycle options for run/create/_serve (the test entry point passes its hooks here). */
  readonly sandbox?: Partial<SandboxOptions>;
}

/** Commander's `error: …` text (with a `(Did you mean …?)` line) as one escaped line. */
function usageLine(text: string): string {
  const body = text
    .replace(/^error: /, '')
    .trimEnd()
    .replace(/\n(?=\(Did you mean)/, ' ');
  return safeLine(`kata-ts: ${body}`);
}

function buildProgram(ctx: CommandContext): Command {
  const program = new Command('kata-ts')
    .description(
      'Host side of a Kata-Containers-compatible runtime: plans and runs VM-isolated sandboxes',
    )
    .version(packageVersion(), '-V, --version', 'print the kata-ts version')
    .addOption(
      new Option(
        '--log-level <level>',
        'log level for JSON logs on stderr (env KATA_TS_LOG)',
      ).choices(LOG_LEVELS),
    )
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: ctx.io.out,
      writeErr: ctx.io.err,
      // Usage errors in the same `kata-ts: <where>: <what>` shape as input errors, on one line:
      // commander quotes the unknown option or argument as given.
      outputError: (text, write) => write(`${usageLine(text)}\n`),
    });
  registerPlanCommand(program, ctx);
  registerVcpusCommand(program, ctx);
  registerRunCommand(program, ctx);
  registerSandboxCommands(program, ctx);
  registerShimCommands(program, ctx);
  return program;
}

/** Runs the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(
  argv: readonly string[],
  io: CliIo = processIo,
  options: CliOptions = {},
): Promise<number> {
  const ctx: CommandContext = {
    io,
    sandbox: options.sandbox ?? {},
    exitCode: 0,
    logLevel: () => (program.opts()['logLevel'] as LogLevel | undefined) ?? levelFromEnv(),
  };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors with 2.
      return e.exitCode === 0 ? 0 : 2;
    }
    // The stack only at debug level: by default the one `kata-ts:` line below is all stderr gets.
    createLogger(ctx.logLevel()).debug({ err: e }, 'internal error');
    io.err(`${errorLine('internal error', e instanceof Error ? e.message : String(e))}\n`);
    return 1;
  }
}
