// `containerd.task.v2.Task` over ttrpc: each method decodes its request, asks the Pod, encodes
// the response; a TaskError becomes its ttrpc status here and nowhere else. No method answers OK
// for work it did not do: Pause, Resume and Checkpoint are absent (UNIMPLEMENTED), and Stats
// never answers an empty Any (containerd 1.6's CRI dereferences a nil one and dies): real
// metrics, or an error naming why there are none.
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import { err, ok, type Result } from 'neverthrow';
import { EmptySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  CloseIORequestSchema,
  ConnectRequestSchema,
  ConnectResponseSchema,
  CreateTaskRequestSchema,
  CreateTaskResponseSchema,
  DeleteRequestSchema,
  DeleteResponseSchema,
  ExecProcessRequestSchema,
  KillRequestSchema,
  PidsRequestSchema,
  PidsResponseSchema,
  ResizePtyRequestSchema,
  ShutdownRequestSchema,
  StartRequestSchema,
  StartResponseSchema,
  StateRequestSchema,
  StateResponseSchema,
  StatsRequestSchema,
  StatsResponseSchema,
  UpdateTaskRequestSchema,
  WaitRequestSchema,
  WaitResponseSchema,
} from '../gen/containerd/task/v2/shim_pb.js';
import type { Pod, ShimProcess } from './pod.js';
import { containerStats } from './stats.js';
import { rpcStatus, type TaskError } from './task-error.js';
import { updateTask } from './task-update.js';
import { resizePty } from './tty.js';
import { Code, type MethodHandler } from './ttrpc-server.js';

export const TASK_SERVICE = 'containerd.task.v2.Task';
export const SHIM_VERSION = 'kata-ts 0.1.0';

/** Go's zero time (0001-01-01T00:00:00Z): containerd's "not exited". */
const GO_ZERO_TIME = { seconds: -62135596800n, nanos: 0 };

type Answer<O extends DescMessage> = Result<MessageInitShape<O>, TaskError>;

function method<I extends DescMessage, O extends DescMessage>(
  input: I,
  output: O,
  body: (req: MessageShape<I>) => Promise<Answer<O>> | Answer<O>,
): MethodHandler {
  return async (payload) => {
    let req: MessageShape<I>;
    try {
      req = fromBinary(input, payload);
    } catch (e) {
      return err({
        code: Code.INVALID_ARGUMENT,
        message: `malformed ${input.typeName}: ${(e as Error).message}`,
      });
    }
    return (await body(req)).map((out) => toBinary(output, create(output, out))).mapErr(rpcStatus);
  };
}

const exitedAt = (p: ShimProcess) => (p.exitedAt ? timestampFromDate(p.exitedAt) : GO_ZERO_TIME);

/** The method table for a pod; `shutdown` is called when containerd asks the shim to exit. */
export function taskMethods(pod: Pod, shutdown: () => void): Map<string, MethodHandler> {
  const m = new Map<string, MethodHandler>();
  const add = (name: string, h: MethodHandler) => m.set(`${TASK_SERVICE}/${name}`, h);
  add(
    'Create',
    method(CreateTaskRequestSchema, CreateTaskResponseSchema, async (r) =>
      (await pod.create(r)).map((pid) => ({ pid })),
    ),
  );
  add(
    'Start',
    method(StartRequestSchema, StartResponseSchema, async (r) =>
      (await pod.start(r.id, r.execId)).map((pid) => ({ pid })),
    ),
  );
  add(
    'State',
    method(StateRequestSchema, StateResponseSchema, (r) =>
      pod
        .task(r.id)
        .andThen((a) => pod.process(r.id, r.execId).map((b) => [a, b] as const))
        .map(([t, p]) => ({
          id: r.execId || r.id,
          bundle: t.bundle,
          pid: p.pid,
          status: p.status,
          stdin: p.stdio.stdin,
          stdout: p.stdio.stdout,
          stderr: p.stdio.stderr,
          terminal: p.terminal ?? false,
          exitStatus: p.exitStatus,
          exitedAt: exitedAt(p),
          execId: r.execId,
        })),
    ),
  );
  add(
    'Wait',
    method(WaitRequestSchema, WaitResponseSchema, async (r) => {
      const p = pod.process(r.id, r.execId);
      if (p.isErr()) return err(p.error);
      await p.value.exited;
      return ok({ exitStatus: p.value.exitStatus, exitedAt: exitedAt(p.value) });
    }),
  );
  add(
    'Kill',
    method(KillRequestSchema, EmptySchema, async (r) =>
      (await pod.kill(r.id, r.execId, r.signal, r.all)).map(() => ({})),
    ),
  );
  add(
    'Delete',
    method(DeleteRequestSchema, DeleteResponseSchema, async (r) =>
      (await pod.delete(r.id, r.execId)).map((p) => ({
        pid: p.pid,
        exitStatus: p.exitStatus,
        exitedAt: exitedAt(p),
      })),
    ),
  );
  add(
    'Pids',
    method(PidsRequestSchema, PidsResponseSchema, (r) =>
      pod.task(r.id).map(() => ({ processes: [{ pid: pod.pid }] })),
    ),
  );
  add(
    'Exec',
    method(ExecProcessRequestSchema, EmptySchema, (r) => pod.exec(r).map(() => ({}))),
  );
  add(
    'ResizePty',
    method(ResizePtyRequestSchema, EmptySchema, async (r) => {
      const found = pod
        .requireSandbox()
        .andThen((sb) => pod.process(r.id, r.execId).map((p) => [sb, p] as const));
      if (found.isErr()) return err(found.error);
      const [sb, p] = found.value;
      return (await resizePty(sb.agent, p, { width: r.width, height: r.height })).map(() => ({}));
    }),
  );
  add(
    'CloseIO',
    method(CloseIORequestSchema, EmptySchema, (r) =>
      (r.stdin ? pod.closeStdin(r.id, r.execId) : ok(undefined)).map(() => ({})),
    ),
  );
  add(
    'Update',
    method(UpdateTaskRequestSchema, EmptySchema, async (r) => {
      const sb = pod.task(r.id).andThen(() => pod.requireSandbox());
      if (sb.isErr()) return err(sb.error);
      return (await updateTask(sb.value.agent, r)).map(() => ({}));
    }),
  );
  add(
    'Stats',
    method(StatsRequestSchema, StatsResponseSchema, async (r) => {
      const sb = pod.task(r.id).andThen(() => pod.requireSandbox());
      if (sb.isErr()) return err(sb.error);
      return (await containerStats(sb.value.agent, r.id)).map((stats) => ({ stats }));
    }),
  );
  add(
    'Connect',
    method(ConnectRequestSchema, ConnectResponseSchema, (r) =>
      (r.id !== '' ? pod.task(r.id).map(() => undefined) : ok(undefined)).map(() => ({
        shimPid: process.pid,
        taskPid: pod.pid,
        version: SHIM_VERSION,
      })),
    ),
  );
  add(
    'Shutdown',
    method(ShutdownRequestSchema, EmptySchema, (r) => {
      // containerd asks after each task's delete; the shim stays while the pod has tasks.
      if (r.now || pod.tasks.size === 0) setImmediate(shutdown);
      return ok({});
    }),
  );
  return m;
}
