// `start`: find or spawn the long-running shim (`serve`) for the container's pod, write the
// bundle's `address` file, print the address and exit 0 — containerd then dials it. The server
// is detached (own session, stdio on /dev/null) so it outlives `start`; it reports readiness (or
// why it failed, which containerd shows) as one line on fd 3.
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { errorLine } from '../input/escape-text.js';
import { bundleAnnotations, sandboxIdOf, socketAddress } from './address.js';
import { socketPathOf } from './events.js';
import type { ShimFlags } from './flags.js';
import { replaceFile } from '../input/replace-file.js';

/** True when something accepts connections on the unix socket. */
export function reachable(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function spawnServer(argv: readonly string[], bundle: string): Promise<string> {
  const args = argv.map((a) => (a === 'start' ? 'serve' : a));
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    cwd: bundle,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve) => {
    let text = '';
    child.stdio[3]!.on('data', (d: Buffer) => (text += d.toString()));
    child.stdio[3]!.once('close', () => {
      child.unref();
      resolve(text.trim() || 'the shim server exited before it was ready');
    });
    child.once('error', (e) => resolve(`cannot spawn the shim server: ${e.message}`));
  });
}

/** Runs `start`; returns the exit code. */
export async function shimStart(flags: ShimFlags, argv: readonly string[]): Promise<number> {
  // No config.json: no annotations, the id is its own sandbox (Create then reports the missing
  // spec). A FIFO, link, oversized or malformed one is refused here with one line.
  const annotations = bundleAnnotations(flags.bundle);
  if (annotations.isErr() && annotations.error.kind !== 'missing') {
    process.stderr.write(`${errorLine(annotations.error.path, annotations.error.what)}\n`);
    return 2;
  }
  const group = sandboxIdOf(flags.id, annotations.unwrapOr({}));
  const address = socketAddress(flags.address, flags.namespace, group);
  const socket = socketPathOf(address);
  if (!(await reachable(socket))) {
    if (group !== flags.id) {
      process.stderr.write(
        `${errorLine('shim', `the shim of sandbox ${group} is not running (${address})`)}\n`,
      );
      return 1;
    }
    if (existsSync(socket)) rmSync(socket, { force: true });
    const ready = await spawnServer(argv, flags.bundle);
    if (ready !== 'ok') {
      process.stderr.write(`${errorLine('shim', ready)}\n`);
      return 1;
    }
  }
  // The bundle may hold a planted `address` symlink: replaced, never followed.
  const written = replaceFile(path.join(flags.bundle, 'address'), address, 0o644);
  if (written.isErr()) {
    process.stderr.write(`${errorLine(written.error.path, written.error.what)}\n`);
    return 1;
  }
  process.stdout.write(address);
  return 0;
}
