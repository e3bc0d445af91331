// inotify watch limit reached. `fs.inotify.max_user_watches` is per user and never changed here:
// the sync runs in a child in a new user namespace whose own limit
// (/proc/sys/user/max_inotify_watches, per namespace) is lowered below the tree's directory count.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { startAgent } from '../agent/agent-harness.js';
import { guest, tempDir } from '../sync/sync-harness.js';
import { watcherThreads } from '../lifecycle/lifecycle-harness.js';

const here = path.dirname(new URL(import.meta.url).pathname);

test.serial(
  'inotify watch limit reached (per-userns limit 8, 40 dirs): the sync fails clearly naming the limit, host limit untouched, nothing left',
  async (t) => {
    t.timeout(60_000);
    const hostLimit = readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8');
    const agent = startAgent(t);
    const source = tempDir(t, 'inotify-src');
    for (let i = 0; i < 40; i++) {
      mkdirSync(path.join(source, `d${i}`, 'sub'), { recursive: true });
      writeFileSync(path.join(source, `d${i}`, 'f'), `${i}\n`);
    }
    const sock = agent.target.kind === 'unix' ? agent.target.path : '';
    const child = spawnSync(
      'unshare',
      [
        '-U',
        '-r',
        process.execPath,
        '--import=tsx',
        path.join(here, 'inotify-child.ts'),
        source,
        sock,
        '8',
        guest('inotify'),
      ],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    t.is(child.status, 0, child.stderr);
    const out = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as {
      limit: number;
      started: boolean;
      error: { code: string; message: string } | null;
      events: Array<{ kind: string; message?: string }>;
    };
    t.log(JSON.stringify(out));
    t.is(out.limit, 8);
    const seen = out.error?.message ?? out.events.find((e) => e.kind === 'error')?.message ?? '';
    t.regex(seen, /inotify_add_watch .*ENOSPC.*max_user_watches/, 'the user sees the watch limit');
    t.false(out.started, 'the sync is refused, not half-started');
    t.is(
      readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8'),
      hostLimit,
      'the host limit is unchanged',
    );
    t.is(watcherThreads(process.pid), 0);
    t.false(existsSync(`/proc/${child.pid}`), 'the child (and its watcher) is gone');
    const copied = existsSync(agent.root)
      ? readdirSync(agent.root, { recursive: true })
          .map(String)
          .filter((p) => p.includes('inotify'))
      : [];
    t.deepEqual(
      copied,
      [],
      'nothing half-copied on the agent side (the watches are set before the first copy)',
    );
  },
);
