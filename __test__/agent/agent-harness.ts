// Starts our agent binary (crates/agent, ttrpc-rust) per test on a temp socket, with a temp
// root, and tears both down by pid. Build it first:
//   cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import {
  connectAgent,
  type AgentClient,
  type AgentClientOptions,
  type AgentTarget,
} from '../../ts/agent/client.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
// KATA_TS_AGENT_BIN runs these tests against another build (e.g. an older agent, to show that a
// regression test fails there).
export const AGENT_BIN =
  process.env.KATA_TS_AGENT_BIN ??
  join(repo, 'target/x86_64-unknown-linux-gnu/release/kata-ts-agent');

export function requireAgentBinary(): string {
  if (!existsSync(AGENT_BIN)) {
    throw new Error(
      `agent binary missing at ${AGENT_BIN}; build it with ` +
        '`cargo build --release --target x86_64-unknown-linux-gnu -p kata-ts-agent`',
    );
  }
  return AGENT_BIN;
}

export type Listen = 'unix' | 'hybrid-vsock';

export interface AgentOptions {
  readonly listen?: Listen;
  /** `--delay-method METHOD:MS` entries. */
  readonly delays?: Readonly<Record<string, number>>;
}

export interface RecordedCall {
  readonly method: string;
  readonly timeoutNano: string;
  readonly request: string;
}

export interface RunningAgent {
  readonly dir: string;
  /** The agent's --root: guest paths land below it. */
  readonly root: string;
  readonly target: AgentTarget;
  readonly child: ChildProcess;
  /** Requests the agent recorded so far, in arrival order. */
  records(): RecordedCall[];
  /** SIGKILL by pid (idempotent) and wait for the exit. */
  kill(): Promise<void>;
}

/** Starts an agent; the test's teardown kills it and removes its temp dir. */
export function startAgent(t: ExecutionContext, options: AgentOptions = {}): RunningAgent {
  const bin = requireAgentBinary();
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-agent-'));
  const root = join(dir, 'root');
  // The agent resolves every guest path beneath its --root and never creates the root itself.
  mkdirSync(root);
  const sock = join(dir, 'agent.sock');
  const record = join(dir, 'requests.jsonl');
  const listen = options.listen ?? 'unix';
  const args = [
    '--listen',
    listen === 'unix' ? `unix:${sock}` : `hvsock:${sock}:1024`,
    '--root',
    root,
    '--record',
    record,
  ];
  for (const [m, ms] of Object.entries(options.delays ?? {}))
    args.push('--delay-method', `${m}:${ms}`);
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      process.kill(child.pid, 'SIGKILL');
    }
    await exited;
  };
  t.teardown(async () => {
    await kill();
    if (t.passed === false && stderr) t.log(`agent stderr:\n${stderr}`);
    rmSync(dir, { recursive: true, force: true });
  });
  const target: AgentTarget =
    listen === 'unix'
      ? { kind: 'unix', path: sock }
      : { kind: 'hybrid-vsock', path: sock, port: 1024 };
  return {
    dir,
    root,
    target,
    child,
    kill,
    records: () =>
      existsSync(record)
        ? readFileSync(record, 'utf8')
            .split('\n')
            .filter((l) => l.length > 0)
            .map((l) => JSON.parse(l) as RecordedCall)
        : [],
  };
}

/** Connects to a started agent; the test's teardown closes the client. */
export async function connect(
  t: ExecutionContext,
  agent: RunningAgent,
  options: AgentClientOptions = {},
): Promise<AgentClient> {
  const client = (
    await connectAgent(agent.target, { dialTimeoutMs: 5_000, ...options })
  )._unsafeUnwrap();
  t.teardown(() => client.close());
  return client;
}
