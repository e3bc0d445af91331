import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import test from 'ava';
import { call, callAsync } from '../../ts/native.js';

const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

test('a native error carries its stable code and message', (t) => {
  const e = call((n) => n.parseVcpuDecimal('-1'))._unsafeUnwrapErr();
  t.is(e.kind, 'native');
  t.is(e.code, 'VCPU_INVALID_DECIMAL');
  t.regex(e.message, /invalid vCPU amount "-1"/);
});

test('a panicking sync export throws PANIC and the process lives on', (t) => {
  const e = call((n) => n.diagPanicSync('sync boom'))._unsafeUnwrapErr();
  t.is(e.code, 'PANIC');
  t.is(e.message, 'native panic: sync boom');
  // The addon still works after the panic.
  t.is(call((n) => n.parseVcpuDecimal('1.5'))._unsafeUnwrap().exact, '3/2');
});

test('a panicking async task rejects with PANIC instead of hanging', async (t) => {
  const e = (await callAsync((n) => n.diagPanicAsync('async boom')))._unsafeUnwrapErr();
  t.is(e.code, 'PANIC');
  t.is(e.message, 'native panic: async boom');
  t.is((await callAsync((n) => n.diagPanicAsync('')))._unsafeUnwrap(), 7);
});

test('async exports run off the main thread', async (t) => {
  let ticks = 0;
  const timer = setInterval(() => (ticks += 1), 5);
  const value = (await callAsync((n) => n.diagEchoAsync(42, 400)))._unsafeUnwrap();
  clearInterval(timer);
  t.is(value, 42);
  // A blocked main thread would give 0 ticks; a loaded machine still gives a few.
  t.true(ticks >= 3, `event loop kept turning while native work ran (${ticks} ticks)`);
});

test('a threadsafe callback delivers 10k events in order', async (t) => {
  const seen: number[] = [];
  await new Promise<void>((resolve) => {
    const source = call(
      (n) =>
        new n.DiagEventSource(10_000, 0, (v) => {
          seen.push(v);
          if (seen.length === 10_000) {
            source.close();
            resolve();
          }
        }),
    )._unsafeUnwrap();
  });
  t.is(seen.length, 10_000);
  t.true(
    seen.every((v, i) => v === i),
    'events arrive in order',
  );
});

test('close() is idempotent and reported by the closed getter', (t) => {
  const source = call((n) => new n.DiagEventSource(1, 0, () => {}))._unsafeUnwrap();
  source.close();
  source.close();
  t.true(source.closed);
});

for (const close of [true, false]) {
  test(`the addon loads and runs under worker_threads (handle ${close ? 'closed' : 'left open at termination'})`, async (t) => {
    const results = await Promise.all(
      [1, 2].map(
        () =>
          new Promise<{ exact: string; events: number; inOrder: boolean }>((resolve, reject) => {
            const worker = new Worker(fixture('worker-load.mjs'), {
              workerData: { count: 500, close },
            });
            worker.once('message', (m) => {
              resolve(m);
              void worker.terminate();
            });
            worker.once('error', reject);
          }),
      ),
    );
    for (const r of results) t.deepEqual(r, { exact: '3/4', events: 500, inOrder: true });
  });
}

function runNode(
  args: string[],
  holdMs?: number,
): Promise<{
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  wasAlive: boolean;
}> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let wasAlive = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = holdMs
      ? setTimeout(() => {
          wasAlive = child.exitCode === null;
          child.kill('SIGKILL'); // by the pid we started
        }, holdMs)
      : undefined;
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, wasAlive });
    });
  });
}

test('process.exit with a live native handle exits cleanly', async (t) => {
  const r = await runNode([fixture('live-handle-exit.mjs'), 'exit']);
  t.is(r.code, 0, r.stderr);
  t.is(r.signal, null);
  t.is(r.stdout, 'events:20\n');
  t.notRegex(r.stderr, /FATAL|panicked|Abort/i);
});

test('closing the last native handle lets node exit by itself', async (t) => {
  const r = await runNode([fixture('live-handle-exit.mjs'), 'close'], 10_000);
  t.false(r.wasAlive, 'node exited without being killed');
  t.is(r.code, 0, r.stderr);
});

test('an open native handle keeps node alive, like fs.watch', async (t) => {
  const r = await runNode([fixture('live-handle-exit.mjs'), 'hold'], 1_500);
  t.true(r.wasAlive);
  t.is(r.signal, 'SIGKILL');
});
