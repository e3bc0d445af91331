// Failure behaviour of the agent channel: timeouts, a dying agent, oversized requests, dial
// errors and local close.
import test from 'ava';
import type { ResultAsync } from 'neverthrow';
import type { AgentError } from '../../ts/agent/errors.js';
import { connectAgent } from '../../ts/agent/client.js';
import { connect, startAgent } from './agent-harness.js';

test('a call that outlives its timeout fails with timeout and the connection stays usable', async (t) => {
  const agent = startAgent(t, { delays: { Check: 3000 } });
  const c = await connect(t, agent, { healthTimeoutMs: 200 });
  const start = Date.now();
  const e = (await c.check())._unsafeUnwrapErr();
  t.like(e, { kind: 'timeout', method: 'Check' });
  t.true(Date.now() - start < 1500, `took ${Date.now() - start} ms`);
  t.regex((await c.version())._unsafeUnwrap().agentVersion, /kata-ts-agent/);
  t.is(agent.records()[0]?.timeoutNano, '200000000', 'timeout_nano sent with the request');
});

test('the agent killed mid-call fails every pending call at once with connection-lost', async (t) => {
  const agent = startAgent(t, { delays: { Check: 10_000 } });
  const c = await connect(t, agent);
  (await c.createContainer({ containerId: 'c1' }))._unsafeUnwrap();
  const calls: ResultAsync<number, AgentError>[] = [
    ...Array.from({ length: 5 }, () => c.check()),
    ...Array.from({ length: 5 }, () => c.waitProcess('c1')),
  ];
  const pending = calls.map(async (r) => ({ x: await r, at: Date.now() }));
  await new Promise((r) => setTimeout(r, 200));
  const killedAt = Date.now();
  await agent.kill();
  const done = await Promise.all(pending);
  for (const { x } of done) t.like(x._unsafeUnwrapErr(), { kind: 'connection-lost' });
  const last = Math.max(...done.map((d) => d.at));
  t.true(last - killedAt < 1000, `failed ${last - killedAt} ms after the kill`);
  t.true(c.closed);
  t.like((await c.check())._unsafeUnwrapErr(), { kind: 'connection-lost' });
});

test('a request over 4 MiB is refused before sending', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const data = Buffer.alloc(5 << 20, 1);
  const e = (
    await c.copyFile({
      path: '/run/kata-containers/shared/containers/big',
      fileSize: BigInt(data.length),
      fileMode: 0o100644,
      data,
    })
  )._unsafeUnwrapErr();
  t.like(e, { kind: 'too-large', method: 'CopyFile' });
  t.regex(e.message, /exceeds the ttrpc limit of 4194304 bytes/);
  t.is((await c.check())._unsafeUnwrap(), 1, 'connection still usable');
  t.deepEqual(
    agent.records().map((r) => r.method),
    ['Check'],
    'nothing but Check reached the agent',
  );
});

test('dialing a socket nobody listens on fails after the dial timeout, naming address and errno', async (t) => {
  const start = Date.now();
  const e = (
    await connectAgent(
      { kind: 'unix', path: '/nonexistent/kata-ts/agent.sock' },
      { dialTimeoutMs: 300 },
    )
  )._unsafeUnwrapErr();
  t.is(e.kind, 'dial');
  t.regex(e.message, /unix:\/\/\/nonexistent\/kata-ts\/agent\.sock/);
  t.regex(e.message, /connect/);
  t.regex(e.message, /errno 2/);
  t.true(Date.now() - start >= 250);
});

test('dialing vsock on a host without vhost-vsock fails clearly', async (t) => {
  const e = (
    await connectAgent({ kind: 'vsock', cid: 3 }, { dialTimeoutMs: 200 })
  )._unsafeUnwrapErr();
  t.is(e.kind, 'dial');
  t.regex(e.message, /vsock:\/\/3:1024/);
  t.regex(e.message, /errno \d+/);
});

test('the hybrid-vsock handshake to a wrong port is refused by the agent front', async (t) => {
  const agent = startAgent(t, { listen: 'hybrid-vsock' });
  const e = (
    await connectAgent(
      { kind: 'hybrid-vsock', path: (agent.target as { path: string }).path, port: 2000 },
      { dialTimeoutMs: 300 },
    )
  )._unsafeUnwrapErr();
  t.is(e.kind, 'dial');
  t.regex(e.message, /hybrid-vsock reply/);
});

test('closing the client fails pending calls with closed', async (t) => {
  const c = await connect(t, startAgent(t, { delays: { Check: 5000 } }));
  const pending = c.check();
  await new Promise((r) => setTimeout(r, 100));
  c.close();
  t.like((await pending)._unsafeUnwrapErr(), { kind: 'closed' });
  t.like((await c.version())._unsafeUnwrapErr(), { kind: 'closed' });
});
