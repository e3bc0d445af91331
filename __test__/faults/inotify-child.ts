// Run inside a fresh user namespace (`unshare -U -r`): lowers that namespace's
// /proc/sys/user/max_inotify_watches (per user namespace; the host value is untouched), starts a
// live sync of argv[2] to the agent at argv[3], and prints what the caller sees as one JSON line.
import { readFileSync, writeFileSync } from 'node:fs';
import { startLiveSync, type SyncEvent } from '../../ts/sync/live-sync.js';
import type { GuestPath } from '../../ts/paths.js';

const [source, socket, limit, dest] = process.argv.slice(2) as [string, string, string, string];
writeFileSync('/proc/sys/user/max_inotify_watches', `${limit}\n`);
const events: SyncEvent[] = [];
const r = await startLiveSync(
  {
    source,
    destinations: [dest as GuestPath],
    agent: { kind: 'unix', path: socket },
    debounceMs: 50,
  },
  (e) => events.push(e),
);
await new Promise((res) => setTimeout(res, 300));
const out = {
  limit: Number(readFileSync('/proc/sys/user/max_inotify_watches', 'utf8')),
  started: r.isOk(),
  error: r.isErr() ? r.error : null,
  events,
};
if (r.isOk()) r.value.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
