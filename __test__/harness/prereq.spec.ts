// gated(): a missing need turns every test of a file into a real ava skip whose title names the
// reason, and its hooks do not run; a met need is ava's own `test`. Runs ava on a probe file.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const PROBE = '__test__/fixtures/gated-probe.check.ts';

function avaTap(env: Record<string, string>): Promise<{ code: number; tap: string }> {
  return new Promise((resolve) => {
    execFile(
      path.join(repoRoot, 'node_modules/.bin/ava'),
      ['--tap', PROBE],
      { cwd: repoRoot, env: { ...process.env, ...env } },
      (e, stdout) => {
        resolve({ code: e === null ? 0 : typeof e.code === 'number' ? e.code : -1, tap: stdout });
      },
    );
  });
}

test('a missing need: every test is skipped with the reason, no hook runs', async (t) => {
  const r = await avaTap({ PROBE_NEED: 'needs a unicorn' });
  t.is(r.code, 0, r.tap);
  const results = r.tap.split('\n').filter((l) => /^(not )?ok \d+ - /.test(l));
  t.deepEqual(results, [
    'ok 1 - serial probe [skipped: needs a unicorn] # SKIP',
    'ok 2 - plain probe [skipped: needs a unicorn] # SKIP',
  ]);
  t.regex(r.tap, /^# pass 0$/m);
  t.regex(r.tap, /^# skip 2$/m);
});

test('every need met: the tests and hooks run', async (t) => {
  const r = await avaTap({ PROBE_NEED: '' });
  t.is(r.code, 0, r.tap);
  t.regex(r.tap, /^# pass 2$/m);
  t.notRegex(r.tap, /# SKIP/);
});
