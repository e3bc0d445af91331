// `serve`: the long-running shim process `start` spawns (detached). It listens on the pod's
// socket, answers the Task service, forwards events, logs JSON to the bundle's `log` FIFO (which
// containerd reads into its own log), and exits on Shutdown once the pod has no tasks.
// Who may drive it: the socket is 0600 and only root and containerd's uid (ours: containerd
// started us) are served (ttrpc-server.ts); its directory is made 0711 whatever the umask.
import {
  chmodSync,
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  mkdirSync,
  openSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { pino, type Logger } from 'pino';
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import { socketAddress, SOCKET_DIR } from './address.js';
import { EventPublisher, socketPathOf } from './events.js';
import type { ShimFlags } from './flags.js';
import { Pod } from './pod.js';
import { taskMethods } from './task-service.js';
import { TtrpcServer } from './ttrpc-server.js';

/** The Kata configuration: KATA_TS_CONFIG, else KATA_CONF_FILE, else /etc/kata-ts/configuration.toml. */
export function configPathFrom(env: NodeJS.ProcessEnv): string {
  return env['KATA_TS_CONFIG'] ?? env['KATA_CONF_FILE'] ?? '/etc/kata-ts/configuration.toml';
}

function openLog(bundle: string, debug: boolean): Logger {
  let fd = -1;
  const file = path.join(bundle, 'log');
  try {
    // containerd's FIFO and nothing else: a planted symlink or regular file there would be
    // overwritten, a device opened. Non-blocking: ENXIO when containerd is not reading instead
    // of hanging; fstat closes the race with a swap after the lstat.
    if (lstatSync(file).isFIFO()) {
      fd = openSync(
        file,
        constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY,
      );
      if (!fstatSync(fd).isFIFO()) {
        closeSync(fd);
        fd = -1;
      }
    }
  } catch {
    fd = -1;
  }
  if (fd === -1) fd = openSync('/dev/null', 'w');
  return pino(
    { name: 'kata-ts-shim', level: debug ? 'debug' : 'info', base: { pid: process.pid } },
    pino.destination({ fd, sync: true }),
  );
}

/** The mode containerd gives /run/containerd and that we give the socket dir: traverse only. */
export const SOCKET_DIR_MODE = 0o711;

/**
 * Makes `dir` (and its missing parents) with SOCKET_DIR_MODE regardless of the umask. An
 * existing directory must be a real directory owned by us or root; if others can write to it
 * (left by an older shim under umask 000) it is tightened to SOCKET_DIR_MODE.
 */
export function ensureSocketDir(dir: string): Result<void, string> {
  const parent = path.dirname(dir);
  if (parent !== dir) {
    const up = ensureParent(parent);
    if (up.isErr()) return up;
  }
  return ensureOne(dir);
}

function ensureParent(dir: string): Result<void, string> {
  try {
    lstatSync(dir);
    return ok(undefined);
  } catch {
    return ensureSocketDir(dir);
  }
}

function ensureOne(dir: string): Result<void, string> {
  try {
    mkdirSync(dir, { mode: SOCKET_DIR_MODE });
    chmodSync(dir, SOCKET_DIR_MODE);
    return ok(undefined);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
      return err(`socket dir ${dir}: ${(e as Error).message}`);
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) return err(`socket dir ${dir}: not a directory`);
  if (st.uid !== 0 && st.uid !== process.geteuid?.())
    return err(`socket dir ${dir}: owned by uid ${st.uid}`);
  if ((st.mode & 0o022) !== 0) chmodSync(dir, SOCKET_DIR_MODE);
  return ok(undefined);
}

/** Tells `start` (fd 3) whether the server is up; then closes fd 3. */
function report(line: string): void {
  try {
    writeSync(3, `${line}\n`);
    closeSync(3);
  } catch {
    // started by hand, without the readiness pipe
  }
}

/** Runs the server; resolves when it shut down. */
export async function shimServe(
  flags: ShimFlags,
  sandbox: Partial<SandboxOptions> = {},
): Promise<number> {
  const log = openLog(flags.bundle, flags.debug);
  const events = new EventPublisher(flags.ttrpcAddress, flags.namespace, log);
  const pod = new Pod(flags.id, { configPath: configPathFrom(process.env), sandbox }, events, log);
  const socket = socketPathOf(socketAddress(flags.address, flags.namespace, flags.id));
  const dir = ensureSocketDir(SOCKET_DIR);
  if (dir.isErr()) {
    report(dir.error);
    return 1;
  }
  let done!: () => void;
  const stopped = new Promise<void>((r) => (done = r));
  let server: TtrpcServer | null = null;
  const shutdown = () => {
    log.info('shutdown');
    server?.close();
    void events.close().then(done);
  };
  const listening = await TtrpcServer.listen(socket, taskMethods(pod, shutdown));
  if (listening.isErr()) {
    report(listening.error.message);
    return 1;
  }
  server = listening.value;
  process.chdir('/');
  log.info({ socket, id: flags.id }, 'serving');
  report('ok');
  await stopped;
  return 0;
}
