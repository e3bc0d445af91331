// The control socket of a sandbox owned by a background process (`kata-ts create` starts one):
// `<state dir>/control.sock`, one JSON request line per connection, one JSON reply. The owner holds
// the VM, the agent connection (virtio-serial allows only one) and the watchers, so `start`,
// `kill`, `wait` and `delete` from other processes go through it.
// Limits: a request line is at most MAX_CONTROL_REQUEST_BYTES (over it: a `request-too-large`
// reply and the connection is dropped, without buffering the rest); each chunk is searched for
// the newline once; an unknown or malformed request gets a named error reply. Who may connect:
// the socket is made 0600 (bound under a private name, chmodded, then renamed, so the umask never
// decides) inside the 0700 state dir, i.e. root only; Node exposes no SO_PEERCRED, so the file
// modes are the check.
import { randomBytes } from 'node:crypto';
import { chmodSync, renameSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { ResultAsync } from 'neverthrow';
import { z } from 'zod';
import { kill, startContainer, wait } from './container.js';
import { stepError, type LifecycleError } from './errors.js';
import { deleteSandbox, type Sandbox } from './sandbox.js';

/** Largest request line the owner reads (the requests are a few dozen bytes). */
export const MAX_CONTROL_REQUEST_BYTES = 1 << 20;
/** control.sock's mode: owner only. */
export const CONTROL_SOCKET_MODE = 0o600;

const ControlRequestSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('start'), containerId: z.string().min(1) }).strict(),
  z
    .object({
      op: z.literal('kill'),
      containerId: z.string().min(1),
      signal: z.number().int().min(1).max(64),
    })
    .strict(),
  z.object({ op: z.literal('wait'), containerId: z.string().min(1) }).strict(),
  z.object({ op: z.literal('delete') }).strict(),
]);

export type ControlRequest = z.infer<typeof ControlRequestSchema>;

export type ControlReply =
  | { readonly ok: true; readonly exitStatus?: number }
  | { readonly ok: false; readonly error: LifecycleError };

/** What is wrong with a request, by name. */
export type ControlProblem = 'request-too-large' | 'malformed-request' | 'unknown-op';

/** The error reply for a bad request: step `input`, the problem's name first in the message. */
export function controlError(
  sandboxId: string,
  problem: ControlProblem,
  detail: string,
): LifecycleError {
  return stepError(sandboxId, 'input', `control request: ${problem}: ${detail}`);
}

export function controlSocket(stateDir: string): string {
  return path.join(stateDir, 'control.sock');
}

async function handle(
  sb: Sandbox,
  req: ControlRequest,
  onStarted: (containerId: string) => void,
): Promise<ControlReply> {
  const reply = (
    r: Awaited<ResultAsync<unknown, LifecycleError>>,
    exitStatus?: number,
  ): ControlReply =>
    r.isErr()
      ? { ok: false, error: r.error }
      : exitStatus === undefined
        ? { ok: true }
        : { ok: true, exitStatus };
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

/** The request in `line`, or the named error to reply with. */
export function parseControlRequest(
  sandboxId: string,
  line: string,
): { ok: true; req: ControlRequest } | { ok: false; error: LifecycleError } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, error: controlError(sandboxId, 'malformed-request', 'not JSON') };
  }
  const op =
    typeof json === 'object' && json !== null && 'op' in json
      ? (json as { op: unknown }).op
      : undefined;
  if (!['start', 'kill', 'wait', 'delete'].includes(op as string)) {
    const shown = typeof op === 'string' ? JSON.stringify(op.slice(0, 32)) : typeof op;
    return {
      ok: false,
      error: controlError(
        sandboxId,
        'unknown-op',
        `op ${shown} is not start, kill, wait or delete`,
      ),
    };
  }
  const parsed = ControlRequestSchema.safeParse(json);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join('.') || '(request)').join(', ');
    return {
      ok: false,
      error: controlError(sandboxId, 'malformed-request', `bad fields: ${fields}`),
    };
  }
  return { ok: true, req: parsed.data };
}

/** Reads one request line off `conn`, bounded by MAX_CONTROL_REQUEST_BYTES; null when dropped. */
function readRequestLine(sandboxId: string, conn: Socket, onLine: (line: string) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (d: Buffer) => {
    // Only the new chunk is searched: a request trickled in byte by byte costs linear time.
    const nl = d.indexOf(0x0a);
    const take = nl < 0 ? d.length : nl;
    if (size + take > MAX_CONTROL_REQUEST_BYTES) {
      conn.off('data', onData);
      const error = controlError(
        sandboxId,
        'request-too-large',
        `over ${MAX_CONTROL_REQUEST_BYTES} bytes without a newline`,
      );
      conn.end(`${JSON.stringify({ ok: false, error })}\n`);
      conn.destroySoon();
      return;
    }
    chunks.push(nl < 0 ? d : d.subarray(0, nl));
    size += take;
    if (nl < 0) return;
    conn.off('data', onData);
    onLine(Buffer.concat(chunks, size).toString('utf8'));
  };
  conn.on('data', onData);
}

/** Listens on `socketPath` with CONTROL_SOCKET_MODE whatever the umask. */
function listenPrivate(server: Server, socketPath: string): Promise<void> {
  const tmp = path.join(path.dirname(socketPath), `.control.${randomBytes(8).toString('hex')}.tmp`);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => {
      try {
        chmodSync(tmp, CONTROL_SOCKET_MODE);
        renameSync(tmp, socketPath);
        resolve();
      } catch (e) {
        rmSync(tmp, { force: true });
        server.close();
        reject(e as Error);
      }
    });
  });
}

/** Serves requests for `sb` until a `delete` was answered (or `stop` aborts); resolves then. */
export function serveControl(
  sb: Sandbox,
  socketPath: string,
  onStarted: (containerId: string) => void = () => {},
  stop?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const onConnection = (conn: Socket) => {
      conn.on('error', () => undefined);
      readRequestLine(sb.id, conn, (line) => {
        const parsed = parseControlRequest(sb.id, line);
        if (!parsed.ok) {
          conn.end(`${JSON.stringify({ ok: false, error: parsed.error })}\n`);
          return;
        }
        void handle(sb, parsed.req, onStarted).then((r) => {
          conn.end(`${JSON.stringify(r)}\n`);
          if (parsed.req.op === 'delete') server.close(() => resolve());
        });
      });
    };
    const server = createServer(onConnection);
    stop?.addEventListener('abort', () => server.close(() => resolve()), { once: true });
    listenPrivate(server, socketPath).catch(reject);
  });
}

/** Sends one request to the sandbox's owner. */
export function callControl(
  socketPath: string,
  sandboxId: string,
  req: ControlRequest,
): ResultAsync<ControlReply, LifecycleError> {
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
  return ResultAsync.fromPromise(call, (e) =>
    stepError(sandboxId, 'input', `cannot reach the sandbox owner: ${(e as Error).message}`),
  );
}
