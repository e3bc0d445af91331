// The control socket of a sandbox owned by a background process (`kata-ts create` starts one):
// `<state dir>/control.sock`, one JSON request per connection, one JSON reply. The owner holds the
// VM, the agent connection (virtio-serial allows only one) and the watchers, so `start`, `kill`,
// `wait` and `delete` from other processes go through it.
import { createConnection, createServer, type Server } from 'node:net';
import path from 'node:path';
import { ResultAsync } from 'neverthrow';
import { kill, startContainer, wait } from './container.js';
import { stepError, type LifecycleError } from './errors.js';
import { deleteSandbox, type Sandbox } from './sandbox.js';

export type ControlRequest =
  | { readonly op: 'start'; readonly containerId: string }
  | { readonly op: 'kill'; readonly containerId: string; readonly signal: number }
  | { readonly op: 'wait'; readonly containerId: string }
  | { readonly op: 'delete' };

export type ControlReply = { readonly ok: true; readonly exitStatus?: number } | { readonly ok: false; readonly error: LifecycleError };

export function controlSocket(stateDir: string): string {
  return path.join(stateDir, 'control.sock');
}

async function handle(sb: Sandbox, req: ControlRequest, onStarted: (containerId: string) => void): Promise<ControlReply> {
  const reply = (r: Awaited<ResultAsync<unknown, LifecycleError>>, exitStatus?: number): ControlReply =>
    r.isErr() ? { ok: false, error: r.error } : exitStatus === undefined ? { ok: true } : { ok: true, exitStatus };
  switch (req.op) {
    case 'start': {
      const r = await startContainer(sb, req.containerId);
      if (r.isOk()) onStarted(req.containerId);
      return reply(r);
    }
    case 'kill':
      return reply(await kill(sb, req.containerId, req.signal));
    case 'wait': {
      const r = await wait(sb, req.containerId);
      return r.isErr() ? { ok: false, error: r.error } : { ok: true, exitStatus: r.value };
    }
    case 'delete':
      return reply(await deleteSandbox(sb));
  }
}

/** Serves requests for `sb` until a `delete` was answered; resolves then. */
export function serveControl(sb: Sandbox, socketPath: string, onStarted: (containerId: string) => void = () => {}): Promise<void> {
  return new Promise((resolve, reject) => {
    let server: Server;
    const onConnection = (conn: import('node:net').Socket) => {
      let text = '';
      conn.on('data', (d) => {
        text += d;
        const nl = text.indexOf('\n');
        if (nl < 0) return;
        let req: ControlRequest;
        try {
          req = JSON.parse(text.slice(0, nl)) as ControlRequest;
        } catch (e) {
          conn.end(`${JSON.stringify({ ok: false, error: stepError(sb.id, 'input', `bad control request: ${String(e)}`) })}\n`);
          return;
        }
        void handle(sb, req, onStarted).then((r) => {
          conn.end(`${JSON.stringify(r)}\n`);
          if (req.op === 'delete') server.close(() => resolve());
        });
      });
      conn.on('error', () => undefined);
    };
    server = createServer(onConnection);
    server.once('error', reject);
    server.listen(socketPath);
  });
}

/** Sends one request to the sandbox's owner. */
export function callControl(socketPath: string, sandboxId: string, req: ControlRequest): ResultAsync<ControlReply, LifecycleError> {
  const call = new Promise<ControlReply>((resolve, reject) => {
    const conn = createConnection(socketPath);
    let text = '';
    conn.on('connect', () => conn.write(`${JSON.stringify(req)}\n`));
    conn.on('data', (d) => (text += d));
    conn.on('end', () => {
      try {
        resolve(JSON.parse(text) as ControlReply);
      } catch {
        reject(new Error(`no answer from the sandbox owner on ${socketPath}`));
      }
    });
    conn.on('error', reject);
  });
  return ResultAsync.fromPromise(call, (e) => stepError(sandboxId, 'input', `cannot reach the sandbox owner: ${(e as Error).message}`));
}
