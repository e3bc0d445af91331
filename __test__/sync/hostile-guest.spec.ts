// Live sync against a hostile guest share, end to end: real inotify on a temp host tree, the
// copy engine, and our agent in its host mode with --root a temp dir. OUTSIDE is a directory
// next to the agent's root, i.e. outside everything the agent may write. Symlinks the sync
// copies (or a container plants) point there by absolute path, so in the agent's root-side
// world they lead to OUTSIDE; whatever the host does next, OUTSIDE must not change.
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { startAgent, type RunningAgent } from '../agent/agent-harness.js';
import { guest, onAgent, snapshot, startSync, tempDir, treeDiff, waitFor } from './sync-harness.js';

/** OUTSIDE next to the agent's root: a 0700 dir with a 0600 file and a 0700 subdir. */
function outsideOf(agent: RunningAgent): string {
  const outside = join(agent.dir, 'outside');
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'victim'), 'original');
  chmodSync(join(outside, 'victim'), 0o600);
  chmodSync(join(outside, 'sub'), 0o700);
  chmodSync(outside, 0o700);
  return outside;
}

const synced = (host: string, g: string) => waitFor(() => treeDiff(host, g).length === 0);

test('a watched d -> OUTSIDE link replaced on the host by a 0777 directory leaves OUTSIDE alone', async (t) => {
  const agent = startAgent(t);
  const outside = outsideOf(agent);
  const host = tempDir(t, 'hostile-dir');
  symlinkSync(outside, join(host, 'd'));
  symlinkSync(join(outside, 'victim'), join(host, 'f'));
  const before = snapshot(outside);
  const dest = guest('c1-00000000000000a1-cfg');
  await startSync(t, agent, { source: host, destinations: [dest], debounceMs: 100 });
  const g = onAgent(agent, dest);
  t.true(lstatSync(join(g, 'd')).isSymbolicLink(), 'the link was copied as a link');

  // The host swaps both links for a world-writable directory and an executable file.
  unlinkSync(join(host, 'd'));
  mkdirSync(join(host, 'd'));
  chmodSync(join(host, 'd'), 0o777);
  unlinkSync(join(host, 'f'));
  writeFileSync(join(host, 'f'), 'replaced');
  chmodSync(join(host, 'f'), 0o755);
  t.true(await synced(host, g), treeDiff(host, g).join('\n'));

  t.deepEqual(snapshot(outside), before, 'OUTSIDE unchanged');
  t.is(lstatSync(outside).mode & 0o7777, 0o700);
  t.true(lstatSync(join(g, 'd')).isDirectory());
  t.is(readFileSync(join(g, 'f'), 'utf8'), 'replaced');
});

test('links a container plants in the guest copy are replaced by the sync, never followed', async (t) => {
  const agent = startAgent(t);
  const outside = outsideOf(agent);
  const host = tempDir(t, 'hostile-plant');
  writeFileSync(join(host, 'key'), 'v1');
  mkdirSync(join(host, 'dir'));
  const dest = guest('c1-00000000000000a2-cfg');
  await startSync(t, agent, { source: host, destinations: [dest], debounceMs: 100 });
  const g = onAgent(agent, dest);
  t.true(await synced(host, g), treeDiff(host, g).join('\n'));
  const before = snapshot(outside);

  // The container swaps its copies for links into OUTSIDE and plants the old temp names.
  rmSync(join(g, 'key'));
  symlinkSync(join(outside, 'victim'), join(g, 'key'));
  rmSync(join(g, 'dir'), { recursive: true });
  symlinkSync(join(outside, 'sub'), join(g, 'dir'));
  symlinkSync(join(outside, 'victim'), join(g, 'new.tmp'));
  symlinkSync(join(outside, 'planted'), join(g, 'key.tmp'));

  writeFileSync(join(host, 'key'), 'v2');
  chmodSync(join(host, 'key'), 0o4755);
  chmodSync(join(host, 'dir'), 0o777);
  writeFileSync(join(host, 'new'), 'fresh');
  writeFileSync(join(host, 'dir/inside'), 'in');
  t.true(
    await waitFor(
      () =>
        readFileSync(join(g, 'new'), 'utf8') === 'fresh' &&
        readFileSync(join(g, 'key'), 'utf8') === 'v2',
    ),
    'the host changes arrived',
  );
  t.deepEqual(snapshot(outside), before, 'OUTSIDE unchanged');
});
