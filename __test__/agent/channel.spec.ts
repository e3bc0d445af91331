// The TS agent client against our agent binary (ttrpc-rust), over a unix socket and over the
// hybrid-vsock front: every typed method round-trips, requests carry runtime-rs timeouts, and
// the agent rejects what the Kata agent rejects.
import test from 'ava';
import { connect, startAgent, type Listen } from './agent-harness.js';

const GUEST = '/run/kata-containers/shared/containers/';

for (const listen of ['unix', 'hybrid-vsock'] as const satisfies readonly Listen[]) {
  test(`${listen}: every method round-trips in a sandbox lifecycle`, async (t) => {
    const agent = startAgent(t, { listen });
    const c = await connect(t, agent);

    t.is((await c.check())._unsafeUnwrap(), 1);
    t.regex((await c.version())._unsafeUnwrap().agentVersion, /^kata-ts-agent /);
    (
      await c.createSandbox({ sandboxId: 'sb1', hostname: 'pod', dns: ['nameserver 10.0.0.1'] })
    )._unsafeUnwrap();
    const details = (await c.getGuestDetails({ memBlockSize: true }))._unsafeUnwrap();
    t.regex(details.agentDetails?.version ?? '', /^kata-ts-agent /);
    (
      await c.createContainer({
        containerId: 'c1',
        OCI: { Hostname: 'pod', Process: { Args: ['cat'] } },
      })
    )._unsafeUnwrap();
    (await c.startContainer('c1'))._unsafeUnwrap();
    // The modelled agent has no cgroups: it names the call it does not carry out (never a false
    // OK), and the request is still recorded as the Kata agent would receive it.
    t.like(
      (
        await c.updateContainer({
          containerId: 'c1',
          resources: { CPU: { Quota: 50_000n, Period: 100_000n } },
        })
      )._unsafeUnwrapErr(),
      { kind: 'status', code: 12, codeName: 'UNIMPLEMENTED', method: 'UpdateContainer' },
    );
    (await c.onlineCpuMem({ wait: true, nbCpus: 2 }))._unsafeUnwrap();
    (
      await c.copyFile({
        path: `${GUEST}c1-cm/key`,
        fileSize: 2n,
        fileMode: 0o100644,
        data: Buffer.from('hi'),
      })
    )._unsafeUnwrap();
    t.is((await c.writeStdin('c1', '', Buffer.from('hello\n')))._unsafeUnwrap(), 6);
    t.is(Buffer.from((await c.readStdout('c1', '', 1024))._unsafeUnwrap()).toString(), 'hello\n');
    const waiting = c.waitProcess('c1');
    // Signal only once the agent holds the WaitProcess, so the recorded order is deterministic
    // and the wait really is blocked until the signal ends the process.
    for (let i = 0; i < 500 && !agent.records().some((r) => r.method === 'WaitProcess'); i++)
      await new Promise((r) => setTimeout(r, 10));
    (await c.signalProcess('c1', '', 9))._unsafeUnwrap();
    t.is((await waiting)._unsafeUnwrap(), 137);
    t.is((await c.readStderr('c1', '', 1024))._unsafeUnwrap().length, 0, 'EOF after exit');
    (await c.removeContainer('c1'))._unsafeUnwrap();
    (await c.destroySandbox())._unsafeUnwrap();

    const calls = agent.records();
    t.deepEqual(
      calls.map((r) => r.method),
      [
        'Check',
        'Version',
        'CreateSandbox',
        'GetGuestDetails',
        'CreateContainer',
        'StartContainer',
        'UpdateContainer',
        'OnlineCPUMem',
        'CopyFile',
        'WriteStdin',
        'ReadStdout',
        'WaitProcess',
        'SignalProcess',
        'ReadStderr',
        'RemoveContainer',
        'DestroySandbox',
      ],
    );
    const timeout = Object.fromEntries(calls.map((r) => [r.method, r.timeoutNano]));
    t.is(timeout.CreateContainer, '30000000000');
    t.is(timeout.Check, '90000000000');
    for (const m of ['WaitProcess', 'ReadStdout', 'ReadStderr', 'WriteStdin'])
      t.is(timeout[m], '0', m);
    const create = calls.find((r) => r.method === 'CreateContainer')!;
    t.regex(create.request, /container_id: "c1"/);
    t.regex(create.request, /Args: "cat"/);
    t.regex(calls.find((r) => r.method === 'UpdateContainer')!.request, /Quota: 50000/);
  });

  test(`${listen}: StartContainer of an unknown container is INVALID_ARGUMENT`, async (t) => {
    const c = await connect(t, startAgent(t, { listen }));
    const e = (await c.startContainer('nope'))._unsafeUnwrapErr();
    t.like(e, { kind: 'status', code: 3, codeName: 'INVALID_ARGUMENT', method: 'StartContainer' });
    t.regex(e.message, /Invalid container id: nope/);
  });

  test(`${listen}: 100 concurrent calls on one connection all succeed`, async (t) => {
    const c = await connect(t, startAgent(t, { listen }));
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 ? c.check() : c.version().map(() => 1))),
    );
    t.true(results.every((r) => r.isOk() && r.value === 1));
  });
}

test('WaitProcess of an unknown exec id is NOT_FOUND', async (t) => {
  const c = await connect(t, startAgent(t));
  (await c.createContainer({ containerId: 'c1' }))._unsafeUnwrap();
  t.like((await c.waitProcess('c1', 'e9'))._unsafeUnwrapErr(), {
    kind: 'status',
    codeName: 'NOT_FOUND',
  });
});

test('CreateContainer twice with one id is ALREADY_EXISTS', async (t) => {
  const c = await connect(t, startAgent(t));
  (await c.createContainer({ containerId: 'c1' }))._unsafeUnwrap();
  t.like((await c.createContainer({ containerId: 'c1' }))._unsafeUnwrapErr(), {
    kind: 'status',
    codeName: 'ALREADY_EXISTS',
  });
});
