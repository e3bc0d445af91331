// One problem is always one line (issue 17 #7): values the CLI prints in its own lines — a
// sandbox id and the paths `cleanup` reports, a signal name `kill` refuses — have their control
// characters escaped (C0, C1 such as U+0085 NEL, U+2028, ESC), so no forged `kata-ts:` line and
// no terminal escape reaches the user. The real CLI is spawned; no VM.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { STATE_SCHEMA_VERSION } from '../../ts/lifecycle/state-schema.js';
import { spawnCli } from './cli-harness.js';

const HOSTILE = '\u001b[31mred\u0085nel\u2028ls\rcr';
const ESCAPED = '\\u001b[31mred\\u0085nel\\u2028ls\\rcr';

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-error-lines-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('kill with a hostile signal name: one escaped line, exit 2', async (t) => {
  const r = await spawnCli(['kill', '--state-root', tempDir(t), 'sid', `SIG${HOSTILE}`]);
  t.false(r.timedOut);
  t.is(r.code, 2);
  t.is(r.stderr, `kata-ts: kill: signal: unknown signal "SIG${ESCAPED}"\n`);
});

test('cleanup prints each action as one escaped line, id and path included', async (t) => {
  const root = tempDir(t);
  const sid = `s${HOSTILE}`;
  const victimDir = path.join(root, `made\nkata-ts: fake: injected${HOSTILE}`);
  mkdirSync(victimDir);
  mkdirSync(path.join(root, sid), { mode: 0o700 });
  const state = {
    schemaVersion: STATE_SCHEMA_VERSION,
    sandboxId: sid,
    status: 'stopped',
    error: null,
    createdAt: new Date().toISOString(),
    configPath: '/nonexistent/configuration.toml',
    sandboxBundle: '/nonexistent/bundle',
    random: [],
    owner: null,
    dirs: [{ path: victimDir, phase: 'done' }],
    rootlessUser: null,
    cgroups: null,
    vm: null,
    mounts: [],
    devices: [],
    watchers: [],
    containers: [],
  };
  writeFileSync(path.join(root, sid, 'state.json'), JSON.stringify(state), { mode: 0o600 });
  const r = await spawnCli(['cleanup', '--state-root', root, sid]);
  t.false(r.timedOut);
  t.is(r.code, 0, r.stderr);
  const escapedDir = path.join(root, `made\\nkata-ts: fake: injected${ESCAPED}`);
  t.is(r.stderr, `kata-ts: s${ESCAPED}: removed ${escapedDir}\n`);
  t.is(r.stderr.split('\n').length, 2, 'one line');
});
