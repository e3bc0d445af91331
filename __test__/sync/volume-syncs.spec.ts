// VolumeSyncs carries out planned copy steps: one sync per sync key fanning out to every
// container's planned guest path; releasing one container keeps the others' updates flowing;
// the last release and sandbox teardown stop the sync; unwatched steps are copied once.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { CopyStep } from '../../ts/plan/copy-volume.js';
import { VolumeSyncs } from '../../ts/sync/volume-syncs.js';
import { startAgent } from '../agent/agent-harness.js';
import { guest, sleep, tempDir, waitFor } from './sync-harness.js';

/** A planned copy step of `source` to `<share dir>/<name>` (as the planner makes them). */
const step = (source: string, name: string, watched = true): CopyStep => ({
  source,
  syncKey: source,
  guestPath: guest(name),
  kind: 'dir',
  watched,
});

function setup(t: ExecutionContext, name: string) {
  const agent = startAgent(t);
  mkdirSync(agent.root, { recursive: true });
  const host = tempDir(t, name);
  writeFileSync(join(host, 'key'), 'v1');
  const syncs = new VolumeSyncs({ agent: agent.target, debounceMs: 100, dialTimeoutMs: 5_000 });
  t.teardown(() => syncs.teardown());
  const guestKey = (s: CopyStep) => join(agent.root, s.guestPath, 'key');
  return { agent, host, syncs, guestKey };
}

test('two containers sharing a configmap both see an update; releasing one keeps the other flowing', async (t) => {
  const { host, syncs, guestKey } = setup(t, 'shared');
  const [sa, sb] = [
    step(host, 'ctr-a-0000000000000001-config'),
    step(host, 'ctr-b-0000000000000002-config'),
  ];
  t.true((await syncs.acquire('ctr-a', sa))._unsafeUnwrap().first);
  t.false((await syncs.acquire('ctr-b', sb))._unsafeUnwrap().first);
  t.deepEqual(syncs.sources(), [host], 'one sync for the key');
  t.is(readFileSync(guestKey(sb), 'utf8'), 'v1', 'the second destination gets a full copy');

  writeFileSync(join(host, 'key'), 'v2');
  t.true(
    await waitFor(
      () =>
        readFileSync(guestKey(sa), 'utf8') === 'v2' && readFileSync(guestKey(sb), 'utf8') === 'v2',
    ),
  );

  t.false(syncs.release('ctr-a', sa), 'not the last destination');
  t.deepEqual(syncs.destinations(host), [{ containerId: 'ctr-b', guestPath: sb.guestPath }]);
  writeFileSync(join(host, 'key'), 'v3');
  t.true(await waitFor(() => readFileSync(guestKey(sb), 'utf8') === 'v3'));
  t.is(readFileSync(guestKey(sa), 'utf8'), 'v2', 'the released destination gets no more updates');
});

test('the last release stops the sync', async (t) => {
  const { host, syncs, guestKey } = setup(t, 'last');
  const sa = step(host, 'ctr-a-0000000000000001-config');
  (await syncs.acquire('ctr-a', sa))._unsafeUnwrap();
  t.true(syncs.release('ctr-a', sa));
  t.deepEqual(syncs.sources(), []);
  await sleep(100);
  writeFileSync(join(host, 'key'), 'after release');
  await sleep(800);
  t.is(readFileSync(guestKey(sa), 'utf8'), 'v1');
});

test('sandbox teardown stops every sync', async (t) => {
  const { host, syncs, guestKey } = setup(t, 'teardown');
  const other = tempDir(t, 'teardown-other');
  writeFileSync(join(other, 'key'), 'o1');
  const [sa, sb] = [
    step(host, 'ctr-a-0000000000000001-a'),
    step(other, 'ctr-a-0000000000000002-b'),
  ];
  (await syncs.acquire('ctr-a', sa))._unsafeUnwrap();
  (await syncs.acquire('ctr-a', sb))._unsafeUnwrap();
  t.is(syncs.sources().length, 2);
  await syncs.teardown();
  t.deepEqual(syncs.sources(), []);
  writeFileSync(join(host, 'key'), 'late');
  writeFileSync(join(other, 'key'), 'late');
  await sleep(800);
  t.is(readFileSync(guestKey(sa), 'utf8'), 'v1');
  t.is(readFileSync(guestKey(sb), 'utf8'), 'o1');
});

test('an unwatched step is copied once and holds no sync', async (t) => {
  const { host, syncs, guestKey } = setup(t, 'once');
  const s = step(host, 'ctr-a-0000000000000001-data', false);
  t.true((await syncs.acquire('ctr-a', s))._unsafeUnwrap().first);
  t.is(readFileSync(guestKey(s), 'utf8'), 'v1');
  t.deepEqual(syncs.sources(), []);
  writeFileSync(join(host, 'key'), 'v2');
  await sleep(800);
  t.is(readFileSync(guestKey(s), 'utf8'), 'v1', 'no watcher');
});

test('a failed first copy drops the destination again', async (t) => {
  const { syncs } = setup(t, 'fail');
  const s = step('/nonexistent/kata-ts-sync-source', 'ctr-a-0000000000000001-config');
  const r = await syncs.acquire('ctr-a', s);
  t.like(r._unsafeUnwrapErr(), {
    kind: 'native',
    code: 'WATCH_START',
    source: '/nonexistent/kata-ts-sync-source',
  });
  t.deepEqual(syncs.destinations(s.syncKey), []);
  t.deepEqual(syncs.sources(), []);
});
