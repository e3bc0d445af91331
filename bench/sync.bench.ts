// Live copy-volume sync (watch crate through the napi binding, our agent as the guest side):
// sync.latency_p99     host write → destination content visible, p99, at the default debounce
//                      (500 ms, runtime-rs DEBOUNCE_TIME), vs a chokidar watcher with the same
//                      debounce copying changed files (temp + rename) into a plain directory;
//                      both timed the same way (fs.watch on the destination dir);
// sync.watch_setup_10k_dirs  recursive watch of 10k directories vs a minimal C inotify loop
//                      (bench/c/inotify_floor.c), each timed inside its own process;
// sync.watch_setup_10k_dirs.{chokidar,parcel}  the same, all timed from JS: ours until
//                      startLiveSync (no destination: watch + initial scan) resolves, chokidar 4
//                      until `ready`, @parcel/watcher 2 until subscribe() resolves;
// sync.idle_cpu        CPU of an idle watcher thread vs the idle C loop, over 3 s;
// sync.tree_copy       MB/s of a full tree copy through CopyFile into the agent vs `cp -a`.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dialOptions, type AgentConnection, type AgentTarget } from '../ts/agent/client.js';
import { callAsync } from '../ts/native.js';
import { guestPath, type GuestPath } from '../ts/paths.js';
import { DEFAULT_DEBOUNCE_MS, startLiveSync, type LiveSync } from '../ts/sync/live-sync.js';
import { higherIsBetter, lowerIsBetter, type Metric, type Metrics } from './metric.js';

const AGENT_BIN = fileURLToPath(
  new URL('../target/x86_64-unknown-linux-gnu/release/kata-ts-agent', import.meta.url),
);
const FLOOR_SRC = fileURLToPath(new URL('./c/inotify_floor.c', import.meta.url));
const FLOOR_BIN = fileURLToPath(new URL('../build/inotify_floor', import.meta.url));
const GUEST = '/run/kata-containers/shared/containers';
/** The watch-setup and idle figures do not depend on the debounce; latency uses the default. */
const DEBOUNCE_MS = 100;
const LATENCY_SAMPLES = 30;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dest = (name: string): GuestPath => guestPath(`${GUEST}/${name}`)._unsafeUnwrap();
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const round = (v: number, digits = 2) => Number(v.toFixed(digits));

async function startAgent(
  dir: string,
): Promise<{ target: AgentTarget; root: string; stop: () => Promise<void> }> {
  if (!existsSync(AGENT_BIN))
    throw new Error(`agent binary missing at ${AGENT_BIN}; run make agent`);
  const root = join(dir, 'root');
  mkdirSync(root);
  const sock = join(dir, 'agent.sock');
  const child = spawn(AGENT_BIN, ['--listen', `unix:${sock}`, '--root', root], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    target: { kind: 'unix', path: sock },
    root,
    stop: async () => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
      await exited;
    },
  };
}

/** utime+stime in ms of /proc/<path>/stat. */
function cpuMs(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** Host write → `key` in `destDir` holds the new content, in ms; `samples` writes, one at a time. */
async function writeToVisible(
  hostDir: string,
  destDir: string,
  samples: number,
  tag: string,
): Promise<number[]> {
  const times: number[] = [];
  for (let i = 1; i <= samples; i++) {
    const want = `${tag}${i}`;
    const seen = new Promise<void>((resolve) => {
      const w = watch(destDir, () => {
        try {
          if (readFileSync(join(destDir, 'key'), 'utf8') === want) {
            w.close();
            resolve();
          }
        } catch {
          // mid-rename
        }
      });
    });
    const start = process.hrtime.bigint();
    writeFileSync(join(hostDir, 'key'), want);
    await seen;
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
    await sleep(20);
  }
  return times;
}

/**
 * The peer: chokidar 4 watching the source, a trailing debounce of the same length, then each
 * changed file copied into `destDir` through a temp file and a rename (as our agent writes).
 */
async function chokidarCopier(
  source: string,
  destDir: string,
  debounceMs: number,
): Promise<() => Promise<void>> {
  const { watch: chokidarWatch } = await import('chokidar');
  const w = chokidarWatch(source, { ignoreInitial: true });
  await new Promise<void>((r) => w.once('ready', () => r()));
  const changed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    for (const file of changed) {
      const rel = file.slice(source.length + 1);
      const tmp = join(destDir, `${rel}.tmp`);
      copyFileSync(file, tmp);
      renameSync(tmp, join(destDir, rel));
    }
    changed.clear();
  };
  w.on('all', (event, file) => {
    if (event !== 'add' && event !== 'change') return;
    changed.add(file);
    clearTimeout(timer);
    timer = setTimeout(flush, debounceMs);
  });
  return async () => {
    clearTimeout(timer);
    await w.close();
  };
}

async function latency(dir: string, target: AgentTarget, root: string): Promise<Metric> {
  const host = join(dir, 'lat');
  mkdirSync(host);
  writeFileSync(join(host, 'key'), 'v0');
  const d = dest('bench-lat');
  // No debounceMs: the default a sandbox gets (DEFAULT_DEBOUNCE_MS).
  const sync = (
    await startLiveSync({ source: host, destinations: [d], agent: target })
  )._unsafeUnwrap();
  let ours: number[];
  try {
    ours = await writeToVisible(host, join(root, d), LATENCY_SAMPLES, 'v');
  } finally {
    sync.close();
  }
  const peerDest = join(dir, 'lat-peer');
  mkdirSync(peerDest);
  copyFileSync(join(host, 'key'), join(peerDest, 'key'));
  const stopPeer = await chokidarCopier(host, peerDest, DEFAULT_DEBOUNCE_MS);
  let peer: number[];
  try {
    peer = await writeToVisible(host, peerDest, LATENCY_SAMPLES, 'p');
  } finally {
    await stopPeer();
  }
  const [o99, o50, p99, p50] = [pct(ours, 99), pct(ours, 50), pct(peer, 99), pct(peer, 50)];
  return lowerIsBetter(
    round(o99),
    round(p99),
    'ms',
    `host write → destination content visible (fs.watch), p99 of ${LATENCY_SAMPLES}, default debounce ${DEFAULT_DEBOUNCE_MS} ms on both sides: ours (watcher thread, scan, CopyFile to the agent, agent temp + rename; p50 ${round(o50)} ms, ${round(o50 - DEFAULT_DEBOUNCE_MS)} ms above the debounce) vs chokidar 4 + the same trailing debounce + copyFile/rename into a local dir (p50 ${round(p50)} ms, ${round(p50 - DEFAULT_DEBOUNCE_MS)} ms above)`,
  );
}

function makeDirs(root: string, n: number): void {
  // 100 × 100 directories (+ the root), one small file each in the first level.
  for (let a = 0; a < 100; a++) {
    for (let b = 0; b < n / 100 - 1; b++)
      mkdirSync(join(root, `a${a}`, `b${b}`), { recursive: true });
    writeFileSync(join(root, `a${a}`, 'f'), 'x');
  }
}

async function watchSetup(
  dir: string,
  target: AgentTarget,
): Promise<{ setup: Metric; idle: Metric }> {
  const host = join(dir, 'dirs');
  makeDirs(host, 10_000);
  execFileSync('gcc', ['-O2', '-o', FLOOR_BIN, FLOOR_SRC]);
  const floorUs: number[] = [];
  const oursUs: number[] = [];
  let dirs = 0;
  let idleOurs = 0;
  let idleFloor = 0;
  for (let round_ = 0; round_ < 2; round_++) {
    const [count, us] = spawnSync(FLOOR_BIN, [host, '0'])
      .stdout.toString()
      .trim()
      .split(' ')
      .map(Number);
    floorUs.push(us!);
    dirs = count!;
    const sync: LiveSync = (
      await startLiveSync({
        source: host,
        destinations: [dest(`bench-dirs-${round_}`)],
        agent: target,
        debounceMs: DEBOUNCE_MS,
      })
    )._unsafeUnwrap();
    oursUs.push(sync.initial.watchSetupUs);
    if (round_ === 0) {
      // Idle CPU of our watcher thread and of the C loop, side by side over 3 s.
      const floor = spawn(FLOOR_BIN, [host, '3500'], { stdio: ['ignore', 'pipe', 'ignore'] });
      await new Promise((r) => floor.stdout.once('data', r));
      const t0 = cpuMs(`/proc/${process.pid}/task/${sync.threadId}/stat`);
      const f0 = cpuMs(`/proc/${floor.pid}/stat`);
      await sleep(3000);
      idleOurs = cpuMs(`/proc/${process.pid}/task/${sync.threadId}/stat`) - t0;
      idleFloor = cpuMs(`/proc/${floor.pid}/stat`) - f0;
      await new Promise((r) => floor.once('exit', r));
    }
    sync.close();
  }
  const ours = Math.min(...oursUs) / 1000;
  const floor = Math.min(...floorUs) / 1000;
  return {
    setup: lowerIsBetter(
      round(ours),
      round(floor),
      'ms',
      `recursive watch of ${dirs} dirs (watch first, then list; best of 2) vs C nftw + inotify_add_watch floor, best of 2, each timed inside its own process (ours: the watch crate's own clock, excluding the scan and the JS crossing; see .chokidar/.parcel for times from JS) (goal ≤ 1.3× i.e. ratio ≥ 0.77); memory per watched dir not measured (no inotify slab in /proc/slabinfo here; user side is one HashMap entry, wd + relative PathBuf)`,
    ),
    idle: {
      kind: 'peer',
      ours: round(idleOurs),
      peer: round(idleFloor),
      // Both idle: even. Ours idle and the C loop not: no finite ratio (null), ours is better.
      ratio: idleOurs === idleFloor ? 1 : idleOurs === 0 ? null : idleFloor / idleOurs,
      unit: 'ms CPU / 3 s',
      note: `CPU of the idle watcher thread (/proc/<pid>/task/<tid>/stat, 10k dirs watched) vs the idle C inotify loop, over 3 s; 0 = no polling`,
    },
  };
}

/**
 * Watch setup of the same tree, every side timed from JS, best of 2 rounds: ours until
 * startLiveSync resolves with no destination (recursive watch + initial scan; on an agent
 * connection dialed beforehand, so no dial and no copy is timed), chokidar until `ready`,
 * @parcel/watcher until subscribe() resolves.
 */
async function watchersFromJs(
  host: string,
  target: AgentTarget,
): Promise<{ oursMs: number; chokidarMs: number; parcelMs: number }> {
  const { watch } = await import('chokidar');
  const parcel = await import('@parcel/watcher');
  const connection: AgentConnection = (
    await callAsync((n) => n.dialAgent(dialOptions(target)))
  )._unsafeUnwrap();
  const ours: number[] = [];
  const chokidar: number[] = [];
  const parcelMs: number[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const o0 = process.hrtime.bigint();
      const sync = (
        await startLiveSync({
          source: host,
          destinations: [],
          agent: target,
          connection,
          debounceMs: DEBOUNCE_MS,
        })
      )._unsafeUnwrap();
      ours.push(Number(process.hrtime.bigint() - o0) / 1e6);
      sync.close();
      await jsPeers(host, watch, parcel, chokidar, parcelMs);
    }
  } finally {
    connection.close();
  }
  return {
    oursMs: Math.min(...ours),
    chokidarMs: Math.min(...chokidar),
    parcelMs: Math.min(...parcelMs),
  };
}

async function jsPeers(
  host: string,
  watch: typeof import('chokidar').watch,
  parcel: typeof import('@parcel/watcher'),
  chokidar: number[],
  parcelMs: number[],
): Promise<void> {
  {
    const c0 = process.hrtime.bigint();
    const w = watch(host, { persistent: true, ignoreInitial: true });
    await new Promise<void>((r) => w.once('ready', () => r()));
    chokidar.push(Number(process.hrtime.bigint() - c0) / 1e6);
    await w.close();
    const p0 = process.hrtime.bigint();
    const sub = await parcel.subscribe(host, () => {});
    parcelMs.push(Number(process.hrtime.bigint() - p0) / 1e6);
    await sub.unsubscribe();
  }
}

async function treeCopy(dir: string, target: AgentTarget, root: string): Promise<Metric[]> {
  const host = join(dir, 'tree');
  let bytes = 0;
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(host, `d${d}`), { recursive: true });
    for (let f = 0; f < 50; f++) {
      const size = f === 0 ? 1 << 20 : 16 << 10;
      writeFileSync(join(host, `d${d}`, `f${f}`), randomBytes(size));
      bytes += size;
    }
  }
  const ours: number[] = [];
  const cp: number[] = [];
  const rsync: number[] = [];
  for (let i = 0; i < 3; i++) {
    const d = dest(`bench-tree-${i}`);
    const start = process.hrtime.bigint();
    const s = (
      await startLiveSync({ source: host, destinations: [d], agent: target, watch: false })
    )._unsafeUnwrap();
    ours.push(Number(process.hrtime.bigint() - start) / 1e9);
    s.close();
    rmSync(join(root, d), { recursive: true, force: true });
    const c0 = process.hrtime.bigint();
    const r = spawnSync('cp', ['-a', host, join(dir, `cp-${i}`)]);
    if (r.status !== 0) throw new Error(`cp -a failed: ${r.stderr}`);
    cp.push(Number(process.hrtime.bigint() - c0) / 1e9);
    rmSync(join(dir, `cp-${i}`), { recursive: true, force: true });
    const r0 = process.hrtime.bigint();
    const rs = spawnSync('rsync', ['-a', `${host}/`, join(dir, `rsync-${i}`)]);
    if (rs.status !== 0) throw new Error(`rsync -a failed: ${rs.stderr}`);
    rsync.push(Number(process.hrtime.bigint() - r0) / 1e9);
    rmSync(join(dir, `rsync-${i}`), { recursive: true, force: true });
  }
  const mb = bytes / 1e6;
  const what = `${round(mb, 1)} MB in 2000 files / 40 dirs: full copy through CopyFile into the agent (dial, scan, read, send, agent write+rename)`;
  return [
    higherIsBetter(
      round(mb / pct(ours, 50), 1),
      round(mb / pct(cp, 50), 1),
      'MB/s',
      `${what} vs cp -a of the same tree; median of 3; goal ratio ≥ 0.8; no VM; load average ${loadavg()[0]!.toFixed(1)}`,
    ),
    higherIsBetter(
      round(mb / pct(ours, 50), 1),
      round(mb / pct(rsync, 50), 1),
      'MB/s',
      `${what} vs rsync -a of the same tree; median of 3`,
    ),
  ];
}

export async function run(): Promise<Metrics> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-sync-bench-'));
  const agent = await startAgent(dir);
  try {
    const metrics: Metrics = {};
    const t0 = Date.now();
    const phase = (name: string) =>
      process.stderr.write(`  ${name} done at ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    metrics['sync.latency_p99'] = await latency(dir, agent.target, agent.root);
    phase('latency');
    const { setup, idle } = await watchSetup(dir, agent.target);
    metrics['sync.watch_setup_10k_dirs'] = setup;
    const js = await watchersFromJs(join(dir, 'dirs'), agent.target);
    const fromJs = `all timed from JS, best of 2: ours = startLiveSync resolved with no destination (recursive watch, then the initial scan; agent connection dialed beforehand) = ${round(js.oursMs)} ms`;
    metrics['sync.watch_setup_10k_dirs.chokidar'] = lowerIsBetter(
      round(js.oursMs),
      round(js.chokidarMs),
      'ms',
      `recursive watch of the same 10k dirs, ${fromJs}, vs chokidar 4 until \`ready\``,
    );
    metrics['sync.watch_setup_10k_dirs.parcel'] = lowerIsBetter(
      round(js.oursMs),
      round(js.parcelMs),
      'ms',
      `recursive watch of the same 10k dirs, ${fromJs}, vs @parcel/watcher 2 subscribe() resolved`,
    );
    metrics['sync.idle_cpu'] = idle;
    phase('watch setup + idle');
    const [vsCp, vsRsync] = await treeCopy(dir, agent.target, agent.root);
    metrics['sync.tree_copy'] = vsCp!;
    metrics['sync.tree_copy.rsync'] = vsRsync!;
    phase('tree copy');
    return metrics;
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
