// The shim's ttrpc server (native server + TS method table) with the addon's ttrpc client as the
// peer, over real unix sockets. containerd's Go client talks to it in shim-containerd.spec.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { callAsync, type NativeError } from '../../ts/native.js';
import { err, ok } from 'neverthrow';
import { Code, TtrpcServer, type MethodHandler } from '../../ts/shim/ttrpc-server.js';

const SVC = 'containerd.task.v2.Task';

function socketPath(t: ExecutionContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-ttrpc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 's.sock');
}

async function serve(
  t: ExecutionContext,
  methods: Record<string, MethodHandler>,
): Promise<TtrpcServer> {
  const server = (
    await TtrpcServer.listen(
      socketPath(t),
      new Map(Object.entries(methods).map(([m, h]) => [`${SVC}/${m}`, h])),
    )
  )._unsafeUnwrap();
  t.teardown(() => server.close());
  return server;
}

async function dial(t: ExecutionContext, socket: string) {
  const conn = (
    await callAsync((n) => n.dialAgent({ kind: 'unix', path: socket, timeoutMs: 2000 }))
  )._unsafeUnwrap();
  t.teardown(() => conn.close());
  return conn;
}

const callErr = async (p: Promise<unknown>): Promise<NativeError> =>
  (await callAsync(() => p))._unsafeUnwrapErr();

test('a registered method answers with its bytes and sees the deadline', async (t) => {
  const server = await serve(t, {
    State: async (req, timeoutNano) =>
      ok(Buffer.concat([Buffer.from(req), Buffer.from(`:${timeoutNano}`)])),
  });
  const conn = await dial(t, server.path);
  const out = await conn.call(SVC, 'State', Buffer.from('id'), 1500);
  t.is(out.toString(), 'id:1500000000');
  t.is(server.connections, 1);
});

test('an unknown method answers UNIMPLEMENTED naming it', async (t) => {
  const server = await serve(t, {});
  const conn = await dial(t, server.path);
  const e = await callErr(conn.call(SVC, 'Pids', Buffer.alloc(0), 1000));
  t.is(e.code, 'TTRPC_STATUS');
  t.regex(e.message, /^12 UNIMPLEMENTED .*containerd.task.v2.Task\/Pids is not implemented/);
});

test('an Err status answers its code; a throw (a bug) answers UNKNOWN with the message', async (t) => {
  const server = await serve(t, {
    Kill: async () => err({ code: Code.NOT_FOUND, message: 'task c1 not found' }),
    Start: async () => {
      throw new Error('agent went away');
    },
  });
  const conn = await dial(t, server.path);
  t.regex(
    (await callErr(conn.call(SVC, 'Kill', Buffer.alloc(0), 1000))).message,
    /^5 NOT_FOUND .*task c1 not found/,
  );
  t.regex(
    (await callErr(conn.call(SVC, 'Start', Buffer.alloc(0), 1000))).message,
    /^2 UNKNOWN .*agent went away/,
  );
});

test('Wait held open does not block State calls on the same and on new connections', async (t) => {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const server = await serve(t, {
    Wait: async () => {
      await released;
      return ok(Buffer.from('exited'));
    },
    State: async (req) => ok(req),
  });
  const first = await dial(t, server.path);
  const wait = first.call(SVC, 'Wait', Buffer.alloc(0), 0);
  const second = await dial(t, server.path);
  for (let k = 0; k < 10; k++) {
    t.is((await first.call(SVC, 'State', Buffer.from(`a${k}`), 1000)).toString(), `a${k}`);
    t.is((await second.call(SVC, 'State', Buffer.from(`b${k}`), 1000)).toString(), `b${k}`);
  }
  t.is(first.pending, 1);
  release();
  t.is((await wait).toString(), 'exited');
});

test('close drops pending calls, refuses new connections and removes the socket', async (t) => {
  const server = await serve(t, { Wait: () => new Promise(() => undefined) });
  const conn = await dial(t, server.path);
  const wait = callErr(conn.call(SVC, 'Wait', Buffer.alloc(0), 0));
  await new Promise((r) => setTimeout(r, 50));
  server.close();
  server.close();
  t.is((await wait).code, 'TRANSPORT_LOST');
  t.true(server.closed);
  const again = await callAsync((n) =>
    n.dialAgent({ kind: 'unix', path: server.path, timeoutMs: 100 }),
  );
  t.is(again._unsafeUnwrapErr().code, 'TRANSPORT_DIAL');
});

test('listening on an existing path fails with TTRPC_LISTEN naming the path', async (t) => {
  const socket = socketPath(t);
  writeFileSync(socket, '');
  const e = (await TtrpcServer.listen(socket, new Map()))._unsafeUnwrapErr();
  t.is(e.code, 'TTRPC_LISTEN');
  t.true(e.message.includes(socket));
});
