// agent.rtt: health Check round trip through our client (TS → napi → Rust ttrpc client → unix
// socket → kata-ts-agent on ttrpc-rust and back) against a raw unix-socket echo of a same-sized
// message in node, measured in the same run.
// agent.copy_throughput: a 64 MiB file sent as 1 MiB chunked CopyFile requests into the agent's
// root (read + send + agent write/rename) against `cp` of the same file.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, createConnection, type Socket } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { connectAgent, type AgentClient } from '../ts/agent/client.js';
import { guestPath } from '../ts/paths.js';
import { startLiveSync } from '../ts/sync/live-sync.js';
import { higherIsBetter, lowerIsBetter, type Metrics } from './metric.js';

const AGENT_BIN = fileURLToPath(
  new URL('../target/x86_64-unknown-linux-gnu/release/kata-ts-agent', import.meta.url),
);
const GUEST = '/run/kata-containers/shared/containers/';
const FILE_MIB = 64;

/** Mean µs per sequential call of `once` over ~`ms`, after a warm-up. */
async function meanMicros(once: () => Promise<unknown>, ms = 1000): Promise<number> {
  for (let i = 0; i < 200; i++) await once();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    await once();
    n++;
    now = process.hrtime.bigint();
  }
  return Number(now - start) / 1000 / n;
}

async function echoRtt(dir: string, size: number): Promise<number> {
  const path = join(dir, 'echo.sock');
  const server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(path, r));
  const sock: Socket = await new Promise((r) => {
    const s = createConnection(path, () => r(s));
  });
  sock.setNoDelay(true);
  const msg = Buffer.alloc(size, 7);
  let waiting: (() => void) | undefined;
  let got = 0;
  sock.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= size && waiting) {
      got -= size;
      const w = waiting;
      waiting = undefined;
      w();
    }
  });
  const once = () =>
    new Promise<void>((r) => {
      waiting = r;
      sock.write(msg);
    });
  const us = await meanMicros(once);
  sock.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return us;
}

async function startAgent(
  dir: string,
): Promise<{ client: AgentClient; root: string; stop: () => Promise<void> }> {
  if (!existsSync(AGENT_BIN)) {
    throw new Error(
      `agent binary missing at ${AGENT_BIN}; run cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent`,
    );
  }
  const root = join(dir, 'root');
  const sock = join(dir, 'agent.sock');
  const child = spawn(AGENT_BIN, ['--listen', `unix:${sock}`, '--root', root], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const client = (
    await connectAgent({ kind: 'unix', path: sock }, { dialTimeoutMs: 5000 })
  )._unsafeUnwrap();
  const stop = async () => {
    client.close();
    if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    await exited;
  };
  return { client, root, stop };
}

export async function run(): Promise<Metrics> {
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-agent-bench-'));
  const agent = await startAgent(dir);
  try {
    const metrics: Metrics = {};
    // A Check request frame is ~31 bytes (10 header + 21 envelope); the reply ~14.
    const ours = await meanMicros(async () => (await agent.client.check())._unsafeUnwrap());
    const peer = await echoRtt(dir, 31);
    metrics['agent.rtt'] = lowerIsBetter(
      Number(ours.toFixed(1)),
      Number(peer.toFixed(1)),
      'µs',
      `health Check round trip (TS client → one napi call that writes the frame on the JS thread → ttrpc over unix socket → kata-ts-agent → reply settles the promise from the native reader) vs a 31-byte node unix-socket echo, sequential, mean over 1 s; no VM; load average ${loadavg()[0]!.toFixed(1)}`,
    );

    const src = join(dir, 'src.bin');
    writeFileSync(src, randomBytes(FILE_MIB << 20));
    // The production copy engine (crates/watch through ts/sync), copying once without watching.
    const copyOnce = async (i: number) => {
      const start = process.hrtime.bigint();
      const dest = guestPath(`${GUEST}bench-file-${i}`)._unsafeUnwrap();
      const target = { kind: 'unix', path: join(dir, 'agent.sock') } as const;
      (
        await startLiveSync({
          source: src,
          destinations: [dest],
          agent: target,
          connection: agent.client.connection,
          watch: false,
        })
      )
        ._unsafeUnwrap()
        .close();
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    const cpOnce = (i: number) => {
      const start = process.hrtime.bigint();
      const r = spawnSync('cp', [src, join(dir, `cp-${i}.bin`)]);
      if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const copySecs: number[] = [];
    const cpSecs: number[] = [];
    for (let i = 0; i < 3; i++) {
      copySecs.push(await copyOnce(i));
      cpSecs.push(cpOnce(i));
      rmSync(join(agent.root, GUEST, `bench-file-${i}`), { force: true });
      rmSync(join(dir, `cp-${i}.bin`), { force: true });
    }
    metrics['agent.copy_throughput'] = higherIsBetter(
      Number((FILE_MIB / median(copySecs)).toFixed(1)),
      Number((FILE_MIB / median(cpSecs)).toFixed(1)),
      'MiB/s',
      `${FILE_MIB} MiB file through the copy engine as CopyFile chunks of 4 MiB - 64 KiB, sent from the read buffer with vectored writes, into the agent's root (read, send, write, rename) vs cp of the same file; median of 3; no VM; load average ${loadavg()[0]!.toFixed(1)}`,
    );
    return metrics;
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
