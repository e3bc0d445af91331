// The state file: atomic writes, validation on read (schema and version), errors naming the file.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { STATE_SCHEMA_VERSION, type SandboxState } from '../../ts/lifecycle/state-schema.js';
import { StateStore, stateRoot } from '../../ts/lifecycle/state-store.js';
import { replayingRandom } from '../../ts/lifecycle/sandbox-inputs.js';
import { hostConst } from '../../ts/paths.js';

function store(t: import('ava').ExecutionContext): StateStore {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-state-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return new StateStore(hostConst(dir));
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
  dirs: [{ path: '/run/kata-ts/a', phase: 'done' }],
  rootlessUser: null,
  cgroups: null,
  vm: null,
  mounts: [],
  devices: [],
  watchers: [],
  containers: [{ id: sandboxId, bundle: '/bundles/a', status: 'creating', exitStatus: null }],
});

test('a written state reads back equal, and no temp file is left', (t) => {
  const s = store(t);
  s.write(state('a'))._unsafeUnwrap();
  t.deepEqual(s.read('a')._unsafeUnwrap(), state('a'));
  t.deepEqual(readdirSync(path.join(s.root, 'a')), ['state.json']);
  t.deepEqual(s.list(), ['a']);
});

test('update rewrites the whole document', (t) => {
  const s = store(t);
  s.write(state('a'))._unsafeUnwrap();
  s.update('a', (x) => ({ ...x, status: 'ready' }))._unsafeUnwrap();
  t.is(s.read('a')._unsafeUnwrap().status, 'ready');
});

test('a missing sandbox is not-found; a corrupt or foreign file is a state error naming the file and field', (t) => {
  const s = store(t);
  t.like(s.read('nope')._unsafeUnwrapErr(), { kind: 'not-found' });
  s.write(state('a'))._unsafeUnwrap();
  const file = path.join(s.root, 'a', 'state.json');
  writeFileSync(file, '{"schemaVersion":');
  t.regex(s.read('a')._unsafeUnwrapErr().message, new RegExp(`${file}: invalid JSON`));
  writeFileSync(file, JSON.stringify({ ...state('a'), schemaVersion: 2 }));
  t.regex(s.read('a')._unsafeUnwrapErr().message, /schemaVersion/);
  writeFileSync(file, JSON.stringify({ ...state('a'), vm: { phase: 'done' } }));
  t.regex(s.read('a')._unsafeUnwrapErr().message, /vm\.qmpSocket/);
});

test('sandbox ids cannot escape the state root', (t) => {
  const s = store(t);
  t.like(s.dir('../etc')._unsafeUnwrapErr(), { kind: 'state' });
  t.like(s.dir('a/b')._unsafeUnwrapErr(), { kind: 'state' });
});

test('the state root comes from the option, then KATA_TS_STATE_ROOT, then /run/kata-ts', (t) => {
  t.is(String(stateRoot('/x', { KATA_TS_STATE_ROOT: '/y' })._unsafeUnwrap()), '/x');
  t.is(String(stateRoot(undefined, { KATA_TS_STATE_ROOT: '/y' })._unsafeUnwrap()), '/y');
  t.is(String(stateRoot(undefined, {})._unsafeUnwrap()), '/run/kata-ts');
  t.like(stateRoot('relative', {})._unsafeUnwrapErr(), { kind: 'state' });
});

test('the replaying random source replays recorded draws in order, then draws fresh ones, recording all', (t) => {
  const drawn: string[] = [];
  const r = replayingRandom(['0000000000000001', 'abcd'], drawn);
  t.is(r(8), '0000000000000001');
  t.is(r(2), 'abcd');
  const fresh = r(8);
  t.regex(fresh, /^[0-9a-f]{16}$/);
  t.deepEqual(drawn, ['0000000000000001', 'abcd', fresh]);
});
