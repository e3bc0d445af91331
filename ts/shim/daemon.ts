// `containerd-shim-kata-ts-v2 daemon`: the one kata-ts shim process of the host, behind the
// front (crates/shim-front), which started it and starts it again if it dies. It listens on its
// private socket (0600, root and our uid only: ttrpc-server.ts) in the state root, re-attaches
// first to every sandbox a previous daemon recorded (so containerd's calls, held by the front
// meanwhile, find their tasks), then serves every pod (daemon-router.ts) until none is left.
// Exit 0 with the socket removed tells the front the daemon ended on purpose.
import { rmSync } from 'node:fs';
import { connect } from 'node:net';
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import { StateStore, stateRoot } from '../lifecycle/state-store.js';
import { daemonPaths, type DaemonPaths } from './address.js';
import { DaemonRouter } from './daemon-router.js';
import { TtrpcServer } from './ttrpc-server.js';

function answers(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(socket);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Runs the daemon; resolves with its exit code when it ended. */
export async function shimDaemon(sandbox: Partial<SandboxOptions> = {}): Promise<number> {
  const root = stateRoot();
  if (root.isErr()) {
    process.stderr.write(`kata-ts: shim daemon: ${root.error.message}\n`);
    return 1;
  }
  const paths = daemonPaths(root.value);
  // One daemon per host: the front starts one only when this socket does not answer.
  if (await answers(paths.daemonSocket)) return 0;
  rmSync(paths.daemonSocket, { force: true });
  process.chdir('/');
  let done!: () => void;
  const idle = new Promise<void>((r) => (done = r));
  const router = new DaemonRouter({
    sandbox,
    store: new StateStore(root.value),
    onIdle: done,
  });
  const problems = await router.recover();
  for (const p of problems) process.stderr.write(`kata-ts: shim daemon: re-attach ${p}\n`);
  const server = await TtrpcServer.listen(paths.daemonSocket, router);
  if (server.isErr()) {
    process.stderr.write(`kata-ts: shim daemon: ${server.error.message}\n`);
    return 1;
  }
  await idle;
  server.value.close();
  await removeStaleFront(paths);
  return 0;
}

/**
 * Idle and going: a front that died (kill -9) left its socket and lock behind, and nobody would
 * remove them. Only when the socket does not answer (no front runs); a front starting meanwhile
 * re-checks that its locked file is still the one at the name (crates/shim-front lock()).
 */
async function removeStaleFront(paths: DaemonPaths): Promise<void> {
  rmSync(`${paths.daemonSocket}.log`, { force: true });
  if (await answers(paths.socket)) return;
  rmSync(paths.socket, { force: true });
  rmSync(paths.lock, { force: true });
}
