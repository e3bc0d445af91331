// `start`: make sure the host-wide shim is up, register the container with it, write the
// bundle's `address` file and print the address — containerd then dials it. One shim serves
// every pod: the front (`kata-ts-shim-front`, native) owns the public socket and containerd's
// connections and keeps the node daemon running behind it (ts/shim/daemon.ts). Concurrent
// `start`s race safely: the front takes an exclusive flock, a second one reports `running`.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { err, ok, type Result } from 'neverthrow';
import { errorLine } from '../input/escape-text.js';
import { replaceFile } from '../input/replace-file.js';
import { stateRoot } from '../lifecycle/state-store.js';
import {
  bundleAnnotations,
  configPathFrom,
  daemonPaths,
  sandboxIdOf,
  type DaemonPaths,
} from './address.js';
import { callDaemon } from './daemon-client.js';
import { daemonNodeFlags } from './daemon-flags.js';
import type { ShimFlags } from './flags.js';

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

const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The installed platform package's directory (it carries the addon and the front), or null. */
function platformPackageDir(): string | null {
  try {
    return path.dirname(
      createRequire(import.meta.url).resolve('kata-ts-linux-x64-gnu/package.json'),
    );
  } catch {
    return null;
  }
}

/** The front binary: packed next to the addon, else the cargo build of this checkout. */
export function frontBinary(root = PACKAGE_ROOT): string | null {
  const platform = platformPackageDir();
  const candidates = [
    ...(platform === null ? [] : [path.join(platform, 'kata-ts-shim-front')]),
    path.join(root, 'kata-ts-shim-front'),
    path.join(root, 'target/x86_64-unknown-linux-gnu/release/kata-ts-shim-front'),
    path.join(root, 'target/release/kata-ts-shim-front'),
  ];
  return candidates.find((c) => existsSync(c)) ?? null;
}

/** The state root as a private dir: made 0700, or an existing root-owned dir nobody else writes. */
function ensureRoot(root: string): Result<void, string> {
  try {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const st = lstatSync(root);
    if (!st.isDirectory()) return err(`${root}: not a directory`);
    if (st.uid !== 0 && st.uid !== process.geteuid?.())
      return err(`${root}: owned by uid ${st.uid}`);
    if ((st.mode & 0o022) !== 0) chmodSync(root, 0o700);
    return ok(undefined);
  } catch (e) {
    return err(`${root}: ${(e as Error).message}`);
  }
}

/** The daemon's command line: this same entry point (test hooks included), action `daemon`. */
function daemonCommand(): string[] {
  return [process.execPath, ...daemonNodeFlags(), ...process.execArgv, process.argv[1]!, 'daemon'];
}

/** Starts the front (detached: own session, stdio /dev/null); its one line says how it went. */
function spawnFront(binary: string, paths: DaemonPaths): Promise<string> {
  const args = [
    '--socket',
    paths.socket,
    '--lock',
    paths.lock,
    '--daemon-socket',
    paths.daemonSocket,
    '--ready-fd',
    '3',
    '--',
    ...daemonCommand(),
  ];
  const child = spawn(binary, args, {
    cwd: '/',
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  return new Promise((resolve) => {
    let text = '';
    child.stdio[3]!.on('data', (d: Buffer) => (text += d.toString()));
    child.stdio[3]!.once('close', () => {
      child.unref();
      resolve(text.trim() || 'the shim front exited before it was ready');
    });
    child.once('error', (e) => resolve(`cannot spawn the shim front: ${e.message}`));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The front answers on its socket: started here, or by a concurrent `start`. */
async function ensureFront(paths: DaemonPaths): Promise<Result<void, string>> {
  if (await reachable(paths.socket)) return ok(undefined);
  const binary = frontBinary();
  if (binary === null) return err('kata-ts-shim-front is not installed (build it: make build)');
  const ready = await spawnFront(binary, paths);
  if (ready !== 'ok' && ready !== 'running') return err(ready);
  // `running`: another front holds the lock and is about to listen (or just did).
  for (let i = 0; i < 100; i++) {
    if (await reachable(paths.socket)) return ok(undefined);
    await sleep(50);
  }
  return err(`the shim front does not answer on ${paths.socket}`);
}

/** Runs `start`; returns the exit code. */
export async function shimStart(flags: ShimFlags): Promise<number> {
  const fail = (what: string, where = 'shim') => {
    process.stderr.write(`${errorLine(where, what)}\n`);
    return 1;
  };
  // No config.json: no annotations, the id is its own sandbox (Create then reports the missing
  // spec). A FIFO, link, oversized or malformed one is refused here with one line.
  const annotations = bundleAnnotations(flags.bundle);
  if (annotations.isErr() && annotations.error.kind !== 'missing') {
    process.stderr.write(`${errorLine(annotations.error.path, annotations.error.what)}\n`);
    return 2;
  }
  const root = stateRoot();
  if (root.isErr()) return fail(root.error.message);
  const made = ensureRoot(root.value);
  if (made.isErr()) return fail(made.error);
  const paths = daemonPaths(root.value);
  const registration = {
    id: flags.id,
    sandboxId: sandboxIdOf(flags.id, annotations.unwrapOr({})),
    namespace: flags.namespace,
    ttrpcAddress: flags.ttrpcAddress,
    bundle: flags.bundle,
    debug: flags.debug,
    // Read from this start's environment: pods of other runtime handlers keep their own.
    configPath: configPathFrom(process.env),
  };
  // A front that was just exiting (its daemon went idle) is replaced by a new one.
  let registered: Result<void, string> = err('not tried');
  for (let attempt = 0; attempt < 3 && registered.isErr(); attempt++) {
    const up = await ensureFront(paths);
    if (up.isErr()) return fail(up.error);
    registered = await callDaemon(paths.socket, 'Register', registration, 30_000);
    if (registered.isErr() && !/UNAVAILABLE|cannot reach|connection/i.test(registered.error)) break;
  }
  if (registered.isErr()) return fail(registered.error);
  const address = `unix://${paths.socket}`;
  // The bundle may hold a planted `address` symlink: replaced, never followed.
  const written = replaceFile(path.join(flags.bundle, 'address'), address, 0o644);
  if (written.isErr()) return fail(written.error.what, written.error.path);
  process.stdout.write(address);
  return 0;
}
