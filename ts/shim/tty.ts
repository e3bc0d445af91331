// A process's terminal: containerd's ResizePty becomes the agent's TtyWinResize (rows = height,
// columns = width). An exec not started yet has no pty in the guest: its size goes into the
// process spec's consoleSize, which ExecProcess hands to the agent with the process.
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { err, ok, type Result } from 'neverthrow';
import { AGENT_SERVICE, DEFAULT_REQUEST_TIMEOUT_MS, type AgentClient } from '../agent/client.js';
import { TtyWinResizeRequestSchema } from '../gen/agent_pb.js';
import { Status } from '../gen/containerd/types/task/task_pb.js';
import type { TaskError } from './task-error.js';

/** The part of a shim process a resize reads and, for an unstarted exec, writes. */
export interface TtyProcess {
  readonly containerId: string;
  readonly execId: string;
  readonly terminal?: boolean;
  readonly status: Status;
  spec?: unknown;
}

export interface WinSize {
  readonly width: number;
  readonly height: number;
}

/** The exec's process spec with `consoleSize` set (the spec is containerd's OCI Process JSON). */
export function withConsoleSize(spec: unknown, size: WinSize): unknown {
  const base = typeof spec === 'object' && spec !== null && !Array.isArray(spec) ? spec : {};
  return { ...base, consoleSize: { height: size.height, width: size.width } };
}

export async function resizePty(
  agent: AgentClient,
  p: TtyProcess,
  size: WinSize,
): Promise<Result<void, TaskError>> {
  const name = p.execId === '' ? p.containerId : `${p.containerId} exec ${p.execId}`;
  if (p.terminal !== true)
    return err({
      kind: 'failed-precondition',
      message: `kata-ts shim: ${name}: ResizePty: the process has no terminal`,
    });
  if (p.execId !== '' && p.status === Status.CREATED) {
    p.spec = withConsoleSize(p.spec, size);
    return ok(undefined);
  }
  const sent = await agent.call(
    AGENT_SERVICE,
    'TtyWinResize',
    TtyWinResizeRequestSchema,
    EmptySchema,
    { containerId: p.containerId, execId: p.execId, row: size.height, column: size.width },
    DEFAULT_REQUEST_TIMEOUT_MS,
  );
  return sent.isOk()
    ? ok(undefined)
    : err({ kind: 'agent', message: `kata-ts shim: ${name}: TtyWinResize: ${sent.error.message}` });
}
