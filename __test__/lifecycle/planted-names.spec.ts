// Names in host dirs another user may write to: the state file's temp file is unguessable and
// created exclusively (a link planted at the old `state.json.tmp-<pid>` name is left alone), an
// unparsable state file is reported without its content, and an empty bind-target file is never
// created through a planted link or FIFO. Real links and FIFOs in a temp dir.
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { touchFile } from '../../ts/lifecycle/host-mounts.js';
import { STATE_SCHEMA_VERSION, type SandboxState } from '../../ts/lifecycle/state-schema.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';

function dir(t: ExecutionContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kata-ts-planted-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const state = (sandboxId: string): SandboxState => ({
  schemaVersion: STATE_SCHEMA_VERSION,
  sandboxId,
  status: 'creating',
  error: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  configPath: '/etc/kata/configuration.toml',
  sandboxBundle: '/bundles/a',
  random: ['00ff'],
  owner: { pid: 1, startTime: '1' },
  dirs: [],
  rootlessUser: null,
  cgroups: null,
  vm: null,
  mounts: [],
  devices: [],
  watchers: [],
  containers: [],
});

test('state write: a link planted at the old temp name is not written through', (t) => {
  const d = dir(t);
  const victim = path.join(d, 'victim');
  writeFileSync(victim, 'untouched\n');
  mkdirSync(path.join(d, 'a'));
  symlinkSync(victim, path.join(d, 'a', `state.json.tmp-${process.pid}`));
  const s = new StateStore(hostConst(d));
  s.write(state('a'))._unsafeUnwrap();
  t.is(readFileSync(victim, 'utf8'), 'untouched\n');
  t.is(s.read('a')._unsafeUnwrap().sandboxId, 'a');
  t.is(statSync(path.join(d, 'a', 'state.json')).mode & 0o777, 0o600);
  // Only the planted link and the state file: the temp file was renamed away.
  t.deepEqual(readdirSync(path.join(d, 'a')).sort(), [
    'state.json',
    `state.json.tmp-${process.pid}`,
  ]);
});

test('state read: invalid JSON is reported without the file content', (t) => {
  const d = dir(t);
  mkdirSync(path.join(d, 'a'));
  writeFileSync(path.join(d, 'a', 'state.json'), 'root:$6$secrethash:20000::::::\n');
  const e = new StateStore(hostConst(d)).read('a')._unsafeUnwrapErr();
  t.log(e.message);
  t.regex(e.message, /state\.json: invalid JSON/);
  t.notRegex(e.message, /root|secret/);
});

test('touchFile creates an empty file and keeps an existing one', (t) => {
  const d = dir(t);
  const f = path.join(d, 'target');
  touchFile(f);
  t.is(readFileSync(f, 'utf8'), '');
  writeFileSync(f, 'kept');
  touchFile(f);
  t.is(readFileSync(f, 'utf8'), 'kept');
});

test('touchFile refuses a planted symlink by name and a FIFO without blocking', (t) => {
  const d = dir(t);
  const link = path.join(d, 'link');
  symlinkSync(path.join(d, 'would-be-created'), link);
  t.throws(() => touchFile(link), { message: /link is a symbolic link \(not followed\)/ });
  t.deepEqual(readdirSync(d), ['link']);
  const fifo = path.join(d, 'fifo');
  execFileSync('mkfifo', [fifo]);
  t.throws(() => touchFile(fifo), { message: /fifo/ });
});
