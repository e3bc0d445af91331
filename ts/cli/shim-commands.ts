// The commands a shim entrypoint drives, runc-style: `create` starts a background owner of the
// sandbox (`kata-ts _serve`, detached; it holds the VM, the agent connection and the watchers)
// and returns once the sandbox container is created; `start`, `kill`, `wait` and `delete` talk to
// that owner over `<state dir>/control.sock`. `delete` of a sandbox whose owner is gone cleans up.
import { spawn } from 'node:child_process';
import { writeSync, closeSync, existsSync } from 'node:fs';
import path from 'node:path';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { errorLine, quoteValue } from '../input/escape-text.js';
import { addContainer, pumpOutput } from '../lifecycle/container.js';
import {
  callControl,
  controlSocket,
  serveControl,
  type ControlRequest,
} from '../lifecycle/control.js';
import { cleanup, createSandbox } from '../lifecycle/sandbox.js';
import { StateStore, stateRoot } from '../lifecycle/state-store.js';
import type { LifecycleError } from '../lifecycle/errors.js';
import { isAlive } from '../lifecycle/process-ref.js';
import {
  addStateRootOption,
  reportError,
  sandboxOptions,
  type LifecycleFlags,
} from './lifecycle-options.js';
import type { CommandContext } from './main.js';
import { openOutputs } from './output-file.js';

interface CreateFlags extends LifecycleFlags {
  readonly config: string;
  readonly bundle: string;
  readonly stdout?: string;
  readonly stderr?: string;
  readonly outputGroup?: string;
}

/** Readiness of `_serve`, written as one JSON line on fd 3. */
type Ready = { ok: true } | { ok: false; error: LifecycleError };

function createArgs(id: string, cmd: string[], f: CreateFlags): string[] {
  return [
    '--config',
    f.config,
    '--bundle',
    path.resolve(f.bundle),
    ...(f.stateRoot ? ['--state-root', f.stateRoot] : []),
    id,
    ...(cmd.length > 0 ? ['--', ...cmd] : []),
  ];
}

function registerCreate(program: Command, ctx: CommandContext): void {
  const withFlags = (c: Command) =>
    addStateRootOption(
      c
        .requiredOption('--config <file>', 'Kata configuration.toml')
        .requiredOption('--bundle <dir>', 'OCI bundle of the sandbox container'),
    )
      .argument('<sandbox-id>')
      .argument('[cmd...]', 'replaces the bundle process args (after --)');
  withFlags(
    program
      .command('create')
      .description('create a sandbox and its container in the background; returns when created'),
  )
    .option('--stdout <file>', "the container's stdout (default /dev/null)")
    .option('--stderr <file>', "the container's stderr (default /dev/null)")
    .option(
      '--output-group <group>',
      'new --stdout/--stderr files are 0640 owned by this group (default: 0600)',
    )
    .action(async (id: string, cmd: string[], f: CreateFlags) => {
      const opened = openOutputs(f);
      if (opened.isErr())
        return reportError(ctx, {
          kind: 'input',
          sandboxId: id,
          lines: opened.error,
          message: opened.error.join('; '),
        });
      const { out, err } = opened.value;
      const child = spawn(
        process.execPath,
        [...process.execArgv, process.argv[1]!, '_serve', ...createArgs(id, cmd, f)],
        {
          detached: true,
          stdio: ['ignore', out, err, 'pipe'],
        },
      );
      closeSync(out);
      closeSync(err);
      let text = '';
      child.stdio[3]!.on('data', (d) => (text += d));
      const exit = new Promise<void>((r) => child.stdio[3]!.on('close', () => r()));
      await exit;
      child.unref();
      let ready: Ready;
      try {
        ready = JSON.parse(text) as Ready;
      } catch {
        ready = {
          ok: false,
          error: {
            kind: 'step',
            sandboxId: id,
            step: 'input',
            message: 'the sandbox owner exited before it was ready',
          },
        };
      }
      if (!ready.ok) reportError(ctx, ready.error);
    });
  // The background owner; not for direct use.
  withFlags(program.command('_serve', { hidden: true })).action(
    async (id: string, cmd: string[], f: CreateFlags) => {
      const ready = (r: Ready) => {
        writeSync(3, `${JSON.stringify(r)}\n`);
        closeSync(3);
      };
      const created = await createSandbox(
        { sandboxId: id, configPath: f.config, bundle: f.bundle, args: cmd },
        sandboxOptions(f, ctx),
      );
      if (created.isErr()) return ready({ ok: false, error: created.error });
      const sb = created.value;
      const added = await addContainer(sb, { id, bundle: f.bundle });
      if (added.isErr()) {
        await cleanup(id, f.stateRoot !== undefined ? { stateRoot: f.stateRoot } : {});
        return ready({ ok: false, error: added.error });
      }
      const stateDir = sb.recorder.store.dir(id)._unsafeUnwrap();
      const served = serveControl(sb, controlSocket(stateDir), (cid) => {
        void pumpOutput(
          sb,
          cid,
          (b) => process.stdout.write(b),
          (b) => process.stderr.write(b),
        );
      });
      ready({ ok: true });
      await served;
      process.exit(0);
    },
  );
}

async function control(
  ctx: CommandContext,
  id: string,
  flags: LifecycleFlags,
  req: ControlRequest,
): Promise<number | undefined> {
  const root = stateRoot(flags.stateRoot);
  if (root.isErr()) return void reportError(ctx, root.error);
  const store = new StateStore(root.value);
  const state = store.read(id);
  if (state.isErr()) return void reportError(ctx, state.error);
  const r = await callControl(controlSocket(store.dir(id)._unsafeUnwrap()), id, req);
  if (r.isErr()) return void reportError(ctx, r.error);
  if (!r.value.ok) return void reportError(ctx, r.value.error);
  return r.value.exitStatus;
}

function signalNumber(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  const name = (
    s.startsWith('SIG') ? s : `SIG${s}`
  ).toUpperCase() as keyof typeof constants.signals;
  return constants.signals[name];
}

export function registerShimCommands(program: Command, ctx: CommandContext): void {
  registerCreate(program, ctx);
  addStateRootOption(
    program.command('start').description('start the created container').argument('<sandbox-id>'),
  ).action(
    async (id: string, f: LifecycleFlags) =>
      void (await control(ctx, id, f, { op: 'start', containerId: id })),
  );
  addStateRootOption(
    program
      .command('kill')
      .description('signal the container (default SIGTERM)')
      .argument('<sandbox-id>')
      .argument('[signal]', 'number or name', 'SIGTERM'),
  ).action(async (id: string, sig: string, f: LifecycleFlags) => {
    const signal = signalNumber(sig);
    if (signal === undefined) {
      ctx.io.err(`${errorLine('kill', `signal: unknown signal ${quoteValue(sig)}`)}\n`);
      ctx.exitCode = 2;
      return;
    }
    await control(ctx, id, f, { op: 'kill', containerId: id, signal });
  });
  addStateRootOption(
    program
      .command('wait')
      .description('wait for the container to exit; prints its exit status')
      .argument('<sandbox-id>'),
  ).action(async (id: string, f: LifecycleFlags) => {
    const status = await control(ctx, id, f, { op: 'wait', containerId: id });
    if (status !== undefined) ctx.io.out(`${status}\n`);
  });
  addStateRootOption(
    program
      .command('delete')
      .description('stop and remove the sandbox (cleanup when its owner is gone)')
      .argument('<sandbox-id>'),
  ).action(async (id: string, f: LifecycleFlags) => {
    const root = stateRoot(f.stateRoot);
    if (root.isErr()) return reportError(ctx, root.error);
    const store = new StateStore(root.value);
    const sock = controlSocket(
      store.dir(id).match(
        (d) => d,
        () => '',
      ),
    );
    const owner = store.read(id).match(
      (s) => s.owner,
      () => null,
    );
    const viaOwner =
      sock !== '' && existsSync(sock) ? await callControl(sock, id, { op: 'delete' }) : null;
    if (viaOwner?.isOk() && viaOwner.value.ok) {
      // The owner exits right after answering; return once it has.
      for (let i = 0; i < 250 && owner !== null && isAlive(owner); i++)
        await new Promise((r) => setTimeout(r, 20));
      return;
    }
    const r = await cleanup(id, f.stateRoot !== undefined ? { stateRoot: f.stateRoot } : {});
    if (r.isErr()) reportError(ctx, r.error);
  });
}
