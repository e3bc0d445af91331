// An idle watcher sleeps in poll(2) without a timeout: its thread accrues no CPU time.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { startAgent } from '../agent/agent-harness.js';
import { guest, sleep, startSync, tempDir } from './sync-harness.js';

/** utime + stime of one thread of this process, in clock ticks. */
function threadTicks(tid: number): number {
  const stat = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('an idle watcher uses no CPU over 5 s', async (t) => {
  const agent = startAgent(t);
  const host = tempDir(t, 'idle');
  for (let i = 0; i < 50; i++) writeFileSync(join(host, `f${i}`), 'x');
  const { sync } = await startSync(t, agent, {
    source: host,
    destinations: [guest('c1-000000000000000a-idle')],
    debounceMs: 100,
  });
  t.true(sync.threadId > 0);
  t.regex(
    readFileSync(`/proc/${process.pid}/task/${sync.threadId}/comm`, 'utf8'),
    /^kata-ts-watch/,
  );
  await sleep(300);
  const before = threadTicks(sync.threadId);
  await sleep(5_000);
  t.is(threadTicks(sync.threadId) - before, 0);
});
