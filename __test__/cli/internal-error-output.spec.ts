// An internal error (a bug, not bad input) prints one `kata-ts: internal error: …` line by
// default; pino's JSON record with the stack only at debug level. A real node process whose
// stdout writer throws (the bug), so pino's writes to fd 2 are seen as they would be.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import test from 'ava';
import { repoRoot } from './cli-harness.js';

function run(extra: string[]): { code: number | null; stderr: string } {
  const mainTs = path.join(repoRoot, 'ts/cli/main.ts');
  const script = `
    const { main } = await import(${JSON.stringify(mainTs)});
    const io = { out: () => { throw new Error('writer broke'); }, err: (s) => process.stderr.write(s) };
    process.exitCode = await main([...${JSON.stringify(extra)}, '--help'], io);
  `;
  const r = spawnSync(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, KATA_TS_LOG: '' },
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr };
}

test('an internal error is one line on stderr by default', (t) => {
  const r = run([]);
  t.log(r.stderr);
  t.is(r.code, 1);
  t.is(r.stderr, 'kata-ts: internal error: writer broke\n');
});

test('the stack is logged at debug level', (t) => {
  const r = run(['--log-level', 'debug']);
  t.is(r.code, 1);
  t.regex(r.stderr, /"msg":"internal error"/);
  t.regex(r.stderr, /writer broke/);
  t.true(r.stderr.endsWith('kata-ts: internal error: writer broke\n'));
});
