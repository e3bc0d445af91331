// control.sock (ts/lifecycle/control.ts), the owner's socket behind `kata-ts start|kill|wait|delete`:
// its request limits, its error replies and its mode. The paths tested here are refused before
// a request reaches the sandbox, so the Sandbox is a stand-in holding only its id (booting a VM
// would test nothing more); what a valid request does is covered by the lifecycle suites.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import {
  controlSocket,
  MAX_CONTROL_REQUEST_BYTES,
  serveControl,
  type ControlReply,
} from '../../ts/lifecycle/control.js';
import type { Sandbox } from '../../ts/lifecycle/sandbox.js';
import { gated, needs } from '../harness/prereq.js';

const asRoot = gated(needs.root());
const standIn = { id: 'ctl-test' } as unknown as Sandbox;

function listening(t: ExecutionContext, dirMode = 0o700): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-ctl-'));
  chmodSync(dir, dirMode);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = controlSocket(dir);
  const stop = new AbortController();
  void serveControl(standIn, socket, () => undefined, stop.signal).catch(() => undefined);
  t.teardown(() => stop.abort());
  return socket;
}

async function until(probe: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !probe(); i++) await new Promise((r) => setTimeout(r, 10));
}

/** Sends `chunks` (stopping at the first write error) and returns the reply text and whether the server closed. */
function exchange(
  socket: string,
  chunks: Iterable<Buffer | string>,
): Promise<{ reply: string; closedEarly: boolean }> {
  return new Promise((resolve) => {
    const conn = createConnection(socket);
    let reply = '';
    let finished = false;
    conn.on('data', (d) => (reply += d));
    conn.on('error', () => undefined);
    conn.on('close', () => resolve({ reply, closedEarly: !finished }));
    conn.on('connect', async () => {
      for (const c of chunks) {
        if (conn.destroyed || !conn.write(c))
          await new Promise((r) =>
            conn.destroyed ? r(null) : conn.once('drain', r).once('close', r),
          );
        if (conn.destroyed) return;
      }
      finished = true;
      conn.end();
    });
  });
}

function* noNewline(totalBytes: number): Generator<Buffer> {
  const chunk = Buffer.alloc(64 << 10, 'a');
  for (let sent = 0; sent < totalBytes; sent += chunk.length) yield chunk;
}

test('a request line over the cap gets a request-too-large reply and the connection is dropped before the rest is read', async (t) => {
  const socket = listening(t);
  await until(() => statSafe(socket));
  const { reply, closedEarly } = await exchange(socket, noNewline(16 * MAX_CONTROL_REQUEST_BYTES));
  const r = JSON.parse(reply) as ControlReply;
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /control request: request-too-large: over 1048576 bytes/);
  t.true(closedEarly, 'the server stopped reading long before 16 MiB');
});

test('an unknown op gets a named unknown-op error, not "undefined"', async (t) => {
  const socket = listening(t);
  await until(() => statSafe(socket));
  const { reply } = await exchange(socket, [`${JSON.stringify({ op: 'format-disk' })}\n`]);
  const r = JSON.parse(reply) as ControlReply;
  t.false(r.ok);
  if (!r.ok)
    t.regex(
      r.error.message,
      /control request: unknown-op: op "format-disk" is not start, kill, wait or delete/,
    );
});

test('a known op with wrong fields gets malformed-request naming them', async (t) => {
  const socket = listening(t);
  await until(() => statSafe(socket));
  const { reply } = await exchange(socket, [
    `${JSON.stringify({ op: 'kill', containerId: 'c', signal: 'KILL' })}\n`,
  ]);
  const r = JSON.parse(reply) as ControlReply;
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /control request: malformed-request: bad fields: signal/);
});

function statSafe(p: string): boolean {
  try {
    return statSync(p).isSocket();
  } catch {
    return false;
  }
}

asRoot.serial(
  'control.sock is 0600 under umask 000 and a non-root user cannot connect',
  async (t) => {
    // A traversable dir, so the socket's own mode is the only barrier.
    const old = process.umask(0);
    let socket: string;
    try {
      socket = listening(t, 0o755);
      await until(() => statSafe(socket));
    } finally {
      process.umask(old);
    }
    t.is(statSync(socket).mode & 0o7777, 0o600);
    const client =
      "const s=require('node:net').connect(process.argv[1]);s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(0)})";
    const r = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', '/usr/bin/node', '-e', client, socket],
      { encoding: 'utf8', timeout: 10_000 },
    );
    t.is(r.stdout.trim(), 'EACCES');
  },
);
