// VolumeSyncs wires live syncs to the VolumeManager: one sync per canonical source fanning out
// to every container's guest path; releasing one container keeps the others' updates flowing;
// the last release and sandbox teardown stop the sync.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { VolumeManager } from '../../ts/plan/volume-manager.js';
import { sequentialHex } from '../../ts/plan/volumes-paths.js';
import { VolumeSyncs } from '../../ts/sync/volume-syncs.js';
import { startAgent } from '../agent/agent-harness.js';
import { sleep, tempDir, waitFor } from './sync-harness.js';

function setup(t: ExecutionContext, name: string) {
  const agent = startAgent(t);
  const host = tempDir(t, name);
  writeFileSync(join(host, 'key'), 'v1');
  const manager = new VolumeManager();
  const syncs = new VolumeSyncs(manager, { agent: agent.target, debounceMs: 100, dialTimeoutMs: 5_000 });
  t.teardown(() => syncs.teardown());
  const guestKey = (guestPath: string) => join(agent.root, guestPath, 'key');
  return { agent, host, manager, syncs, guestKey, random: sequentialHex() };
}

test('two containers sharing a configmap both see an update; releasing one keeps the other flowing', async (t) => {
  const { host, manager, syncs, guestKey, random } = setup(t, 'shared');
  const a = (await syncs.acquire(host, 'ctr-a', '/etc/config', random))._unsafeUnwrap();
  const b = (await syncs.acquire(host, 'ctr-b', '/etc/config', random))._unsafeUnwrap();
  t.true(a.first);
  t.false(b.first);
  t.not(a.guestPath, b.guestPath);
  t.deepEqual(syncs.sources(), [host], 'one sync for the source');
  t.is(readFileSync(guestKey(b.guestPath), 'utf8'), 'v1', 'the second destination gets a full copy');

  writeFileSync(join(host, 'key'), 'v2');
  t.true(await waitFor(() => readFileSync(guestKey(a.guestPath), 'utf8') === 'v2' && readFileSync(guestKey(b.guestPath), 'utf8') === 'v2'));

  t.false(syncs.release(host, 'ctr-a'), 'not the last reference');
  t.is(manager.get(host)?.refCount, 1);
  writeFileSync(join(host, 'key'), 'v3');
  t.true(await waitFor(() => readFileSync(guestKey(b.guestPath), 'utf8') === 'v3'));
  t.is(readFileSync(guestKey(a.guestPath), 'utf8'), 'v2', 'the released destination gets no more updates');
});

test('the last release stops the sync', async (t) => {
  const { host, syncs, guestKey, random } = setup(t, 'last');
  const a = (await syncs.acquire(host, 'ctr-a', '/etc/config', random))._unsafeUnwrap();
  t.true(syncs.release(host, 'ctr-a'));
  t.deepEqual(syncs.sources(), []);
  await sleep(100);
  writeFileSync(join(host, 'key'), 'after release');
  await sleep(800);
  t.is(readFileSync(guestKey(a.guestPath), 'utf8'), 'v1');
});

test('sandbox teardown stops every sync', async (t) => {
  const { host, syncs, guestKey, random } = setup(t, 'teardown');
  const other = tempDir(t, 'teardown-other');
  writeFileSync(join(other, 'key'), 'o1');
  const a = (await syncs.acquire(host, 'ctr-a', '/etc/a', random))._unsafeUnwrap();
  const b = (await syncs.acquire(other, 'ctr-a', '/etc/b', random))._unsafeUnwrap();
  t.is(syncs.sources().length, 2);
  await syncs.teardown();
  t.deepEqual(syncs.sources(), []);
  writeFileSync(join(host, 'key'), 'late');
  writeFileSync(join(other, 'key'), 'late');
  await sleep(800);
  t.is(readFileSync(guestKey(a.guestPath), 'utf8'), 'v1');
  t.is(readFileSync(guestKey(b.guestPath), 'utf8'), 'o1');
});

test('a failed first copy gives the reference back', async (t) => {
  const { manager, syncs, random } = setup(t, 'fail');
  const r = await syncs.acquire('/nonexistent/kata-ts-sync-source', 'ctr-a', '/etc/config', random);
  t.like(r._unsafeUnwrapErr(), { kind: 'native', code: 'WATCH_START', source: '/nonexistent/kata-ts-sync-source' });
  t.is(manager.get('/nonexistent/kata-ts-sync-source'), undefined);
  t.deepEqual(syncs.sources(), []);
});
