// The watch crate end to end: real inotify on a temp host tree, our agent as the guest side
// (its --root a temp dir), guest tree compared with the host tree by content, permissions,
// owners and symlink targets.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { startAgent } from '../agent/agent-harness.js';
import {
  eventSyncs,
  guest,
  onAgent,
  sleep,
  startSync,
  tempDir,
  treeDiff,
  waitFor,
} from './sync-harness.js';

function sampleTree(root: string): void {
  mkdirSync(join(root, 'sub/deeper'), { recursive: true });
  writeFileSync(join(root, 'key'), 'value\n');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'sub/secret'), 'shh');
  writeFileSync(join(root, 'sub/deeper/data.bin'), randomBytes(70_000));
  chmodSync(join(root, 'sub/secret'), 0o600);
  chmodSync(join(root, 'sub/deeper'), 0o700);
  chownSync(join(root, 'sub/secret'), 1234, 5678);
  chownSync(join(root, 'sub'), 1000, 1000);
  symlinkSync('sub/secret', join(root, 'link'));
}

test('the initial sync makes the guest tree equal the host tree', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'initial');
  sampleTree(host);
  const dest = guest('c1-0000000000000001-cfg');
  const { sync } = await startSync(t, agent, { source: host, destinations: [dest] });
  t.like(sync.initial, {
    kind: 'synced',
    reason: 'initial',
    full: true,
    failed: 0,
    destinations: 1,
  });
  t.is(
    sync.initial.entries,
    8,
    'root, empty, key, link, sub, sub/deeper, sub/secret, sub/deeper/data.bin',
  );
  t.deepEqual(treeDiff(host, onAgent(agent, dest)), []);
});

test('a directory created and written into at once is synced completely', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'mkdir-write');
  const dest = guest('c1-0000000000000002-cfg');
  await startSync(t, agent, { source: host, destinations: [dest], debounceMs: 100 });
  mkdirSync(join(host, 'a/b/c'), { recursive: true });
  writeFileSync(join(host, 'a/b/c/f1'), 'one');
  writeFileSync(join(host, 'a/b/f2'), 'two');
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0),
    treeDiff(host, onAgent(agent, dest)).join('\n'),
  );
  // The new directories are watched too: a later write deep inside still arrives.
  writeFileSync(join(host, 'a/b/c/f1'), 'one, later');
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0),
    treeDiff(host, onAgent(agent, dest)).join('\n'),
  );
});

test('a whole tree renamed into the volume is synced and then watched to its depth', async (t) => {
  const agent = startAgent(t);
  const base = tempDir(t, 'rename-in');
  const host = join(base, 'vol');
  mkdirSync(host);
  mkdirSync(join(base, 'outside/x/y/z'), { recursive: true });
  writeFileSync(join(base, 'outside/x/y/z/deep'), 'deep');
  writeFileSync(join(base, 'outside/x/top'), 'top');
  const dest = guest('c1-0000000000000003-cfg');
  await startSync(t, agent, { source: host, destinations: [dest], debounceMs: 100 });
  renameSync(join(base, 'outside/x'), join(host, 'x'));
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0),
    treeDiff(host, onAgent(agent, dest)).join('\n'),
  );
  writeFileSync(join(host, 'x/y/z/deep'), 'changed inside the renamed tree');
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0),
    treeDiff(host, onAgent(agent, dest)).join('\n'),
  );
});

/** kubelet's AtomicWriter: new `..<ts>` dir, `..data_tmp` → `..data` rename, old dir removed. */
function kubeletLayout(root: string, ts: string, value: string): void {
  mkdirSync(join(root, ts));
  writeFileSync(join(root, ts, 'key'), value);
  symlinkSync(ts, join(root, '..data_tmp'));
  renameSync(join(root, '..data_tmp'), join(root, '..data'));
}

test('a kubelet atomic update reaches the guest once, after the debounce', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'kubelet');
  kubeletLayout(host, '..2026_01_01_00_00_00.1', 'v1');
  symlinkSync('..data/key', join(host, 'key'));
  const dest = guest('c1-0000000000000004-cm');
  const debounceMs = 500;
  const { events } = await startSync(t, agent, { source: host, destinations: [dest], debounceMs });
  const guestKey = join(onAgent(agent, dest), 'key');
  t.is(readFileSync(guestKey, 'utf8'), 'v1');

  const updatedAt = Date.now();
  kubeletLayout(host, '..2026_01_01_00_00_01.2', 'v2');
  rmSync(join(host, '..2026_01_01_00_00_00.1'), { recursive: true });
  t.true(await waitFor(() => readFileSync(guestKey, 'utf8') === 'v2'));
  t.true(Date.now() - updatedAt >= debounceMs, 'not before the debounce');
  await sleep(3 * debounceMs);
  t.is(eventSyncs(events).length, 1, JSON.stringify(events));
  // The old timestamp dir stays in the guest (CopyFile cannot delete); everything on the host is there.
  t.deepEqual(treeDiff(host, onAgent(agent, dest), { allowExtra: true }), []);
});

test('a burst of writes leads to one sync that sends only the changed files', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'burst');
  for (let i = 0; i < 20; i++) writeFileSync(join(host, `f${i}`), 'initial');
  // Files changed within 100 ms of a scan are resent next time (same-tick changes cannot be
  // told apart); let the initial ones age so only the burst's files count as changed.
  await sleep(300);
  const dest = guest('c1-0000000000000005-cfg');
  const { events } = await startSync(t, agent, {
    source: host,
    destinations: [dest],
    debounceMs: 500,
  });
  for (let round = 0; round < 10; round++)
    for (let i = 0; i < 5; i++) writeFileSync(join(host, `f${i}`), `round ${round}`);
  t.true(
    await waitFor(
      () => eventSyncs(events).length > 0 && treeDiff(host, onAgent(agent, dest)).length === 0,
    ),
  );
  await sleep(1500);
  const syncs = eventSyncs(events);
  t.is(syncs.length, 1, JSON.stringify(events));
  t.like(syncs[0], { kind: 'synced', full: false, entries: 5, failed: 0 });
});

test('a storm of 40k write events and 50 new directories leaves the guest equal to the host', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'storm');
  const dest = guest('c1-0000000000000006-cfg');
  const { events } = await startSync(t, agent, {
    source: host,
    destinations: [dest],
    debounceMs: 50,
  });
  const fds = Array.from({ length: 200 }, (_, i) => openSync(join(host, `f${i}`), 'w'));
  try {
    // Alternating files defeats the kernel's merging of identical consecutive events.
    for (let n = 0; n < 40_000; n++) writeSync(fds[n % fds.length]!, `${n}\n`);
    for (let d = 0; d < 50; d++) mkdirSync(join(host, `d${d}/e`), { recursive: true });
    for (let d = 0; d < 50; d++) writeFileSync(join(host, `d${d}/e/f`), `dir ${d}`);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0, 60_000),
    treeDiff(host, onAgent(agent, dest)).slice(0, 10).join('\n'),
  );
  t.false(
    events.some((e) => e.kind === 'error'),
    JSON.stringify(events.filter((e) => e.kind === 'error')),
  );
  t.log(
    `syncs: ${eventSyncs(events).length}, overflow resyncs: ${events.filter((e) => e.kind === 'synced' && e.reason === 'overflow').length}`,
  );
});

/** The copy engine's chunk (crates/watch CHUNK_BYTES): a 4 MiB ttrpc message leaves room for the rest. */
const CHUNK_BYTES = (4 << 20) - (64 << 10);

test('a 10 MiB file arrives intact in chunks that fit a ttrpc message, in offset order', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'big');
  const data = randomBytes(10 << 20);
  writeFileSync(join(host, 'blob'), data);
  const dest = guest('c1-0000000000000007-cfg');
  const { sync } = await startSync(t, agent, { source: host, destinations: [dest] });
  t.is(sync.initial.bytes, data.length);
  t.true(readFileSync(join(onAgent(agent, dest), 'blob')).equals(data));
  const offsets = agent
    .records()
    .filter((r) => r.method === 'CopyFile' && r.request.includes('/blob"'))
    .map((r) => Number(/offset: (\d+)/.exec(r.request)?.[1] ?? '0'));
  t.deepEqual(offsets, [0, CHUNK_BYTES, 2 * CHUNK_BYTES]);
});

test('a symlink pointing outside the volume is copied as a symlink, never followed', async (t) => {
  const agent = startAgent(t);
  const base = tempDir(t, 'escape');
  const host = join(base, 'vol');
  mkdirSync(join(base, 'outside'));
  writeFileSync(join(base, 'outside/private'), 'must not be copied');
  mkdirSync(host);
  symlinkSync(join(base, 'outside'), join(host, 'dir-link'));
  symlinkSync('../outside/private', join(host, 'file-link'));
  symlinkSync('/etc', join(host, 'etc'));
  const dest = guest('c1-0000000000000008-cfg');
  await startSync(t, agent, { source: host, destinations: [dest], debounceMs: 100 });
  const g = onAgent(agent, dest);
  t.deepEqual(treeDiff(host, g), []);
  for (const name of ['dir-link', 'file-link', 'etc'])
    t.true(lstatSync(join(g, name)).isSymbolicLink(), name);
  // A change behind the link (outside the volume) is neither watched nor copied.
  writeFileSync(join(base, 'outside/new'), 'x');
  await sleep(400);
  t.false(existsSync(join(agent.root, base, 'outside')));
  t.deepEqual(treeDiff(host, g), []);
});

test('a file source with watch: false is copied once with its st_mode', async (t) => {
  const agent = startAgent(t);
  const base = tempDir(t, 'file');
  writeFileSync(join(base, 'resolv.conf'), 'nameserver 10.0.0.1\n');
  chmodSync(join(base, 'resolv.conf'), 0o640);
  const dest = guest('c1-0000000000000009-resolv.conf');
  const { sync } = await startSync(t, agent, {
    source: join(base, 'resolv.conf'),
    destinations: [dest],
    watch: false,
  });
  t.like(sync.initial, { entries: 1, failed: 0 });
  const st = lstatSync(onAgent(agent, dest));
  t.is(st.mode & 0o7777, 0o640);
  t.is(readFileSync(onAgent(agent, dest), 'utf8'), 'nameserver 10.0.0.1\n');
});

test('a destination outside the share dir is refused before anything is sent', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'bad-dest');
  const { startLiveSync } = await import('../../ts/sync/live-sync.js');
  const r = await startLiveSync({
    source: host,
    destinations: ['/etc/x' as never],
    agent: agent.target,
  });
  t.like(r._unsafeUnwrapErr(), { kind: 'native', code: 'WATCH_INVALID' });
  t.deepEqual(
    agent.records().filter((x) => x.method === 'CopyFile'),
    [],
  );
});

test('an inotify queue overflow while a sync is busy leads to a full resync; the guest equals the host', async (t) => {
  // Each CopyFile takes 1.5 s in the agent, so the watcher thread is inside a sync (not reading
  // inotify) while 40k events arrive: more than fs.inotify.max_queued_events (16384 by default).
  const agent = startAgent(t, { delays: { CopyFile: 1500 } });
  const host = tempDir(t, 'overflow');
  for (let i = 0; i < 8; i++) writeFileSync(join(host, `f${i}`), '');
  const dest = guest('c1-000000000000000b-cfg');
  const { events } = await startSync(t, agent, {
    source: host,
    destinations: [dest],
    debounceMs: 50,
    callTimeoutMs: 60_000,
  });
  writeFileSync(join(host, 'trigger'), 'start a slow sync');
  await sleep(300);
  const fds = Array.from({ length: 8 }, (_, i) => openSync(join(host, `f${i}`), 'a'));
  try {
    for (let n = 0; n < 40_000; n++) writeSync(fds[n % fds.length]!, 'x');
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  t.true(
    await waitFor(() => events.some((e) => e.kind === 'synced' && e.reason === 'overflow'), 60_000),
    JSON.stringify(events),
  );
  t.like(
    events.find((e) => e.kind === 'synced' && e.reason === 'overflow'),
    { full: true, failed: 0 },
  );
  t.true(
    await waitFor(() => treeDiff(host, onAgent(agent, dest)).length === 0, 60_000),
    treeDiff(host, onAgent(agent, dest)).join('\n'),
  );
});
