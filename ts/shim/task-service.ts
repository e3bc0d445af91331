// `containerd.task.v2.Task` over ttrpc: each method decodes its request, asks the Pod, encodes
// the response. Pause, Resume and Checkpoint are absent, so they answer UNIMPLEMENTED.
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { EmptySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  CloseIORequestSchema, ConnectRequestSchema, ConnectResponseSchema, CreateTaskRequestSchema, CreateTaskResponseSchema,
  DeleteRequestSchema, DeleteResponseSchema, ExecProcessRequestSchema, KillRequestSchema, PidsRequestSchema,
  PidsResponseSchema, ResizePtyRequestSchema, ShutdownRequestSchema, StartRequestSchema, StartResponseSchema,
  StateRequestSchema, StateResponseSchema, StatsRequestSchema, StatsResponseSchema, UpdateTaskRequestSchema,
  WaitRequestSchema, WaitResponseSchema,
} from '../gen/containerd/task/v2/shim_pb.js';
import type { Pod, ShimProcess } from './pod.js';
import type { MethodHandler } from './ttrpc-server.js';

export const TASK_SERVICE = 'containerd.task.v2.Task';
export const SHIM_VERSION = 'kata-ts 0.1.0';

/** Go's zero time (0001-01-01T00:00:00Z): containerd's "not exited". */
const GO_ZERO_TIME = { seconds: -62135596800n, nanos: 0 };

function method<I extends DescMessage, O extends DescMessage>(input: I, output: O, body: (req: MessageShape<I>) => Promise<MessageInitShape<O>> | MessageInitShape<O>): MethodHandler {
  return async (payload) => toBinary(output, create(output, await body(fromBinary(input, payload))));
}

const exitedAt = (p: ShimProcess) => (p.exitedAt ? timestampFromDate(p.exitedAt) : GO_ZERO_TIME);

/** The method table for a pod; `shutdown` is called when containerd asks the shim to exit. */
export function taskMethods(pod: Pod, shutdown: () => void): Map<string, MethodHandler> {
  const m = new Map<string, MethodHandler>();
  const add = (name: string, h: MethodHandler) => m.set(`${TASK_SERVICE}/${name}`, h);
  add('Create', method(CreateTaskRequestSchema, CreateTaskResponseSchema, async (r) => ({ pid: await pod.create(r) })));
  add('Start', method(StartRequestSchema, StartResponseSchema, async (r) => ({ pid: await pod.start(r.id, r.execId) })));
  add('State', method(StateRequestSchema, StateResponseSchema, (r) => {
    const t = pod.task(r.id);
    const p = pod.process(r.id, r.execId);
    return {
      id: r.execId || r.id, bundle: t.bundle, pid: p.pid, status: p.status, stdin: p.stdio.stdin, stdout: p.stdio.stdout,
      stderr: p.stdio.stderr, terminal: p.stdio.terminal, exitStatus: p.exitStatus, exitedAt: exitedAt(p), execId: r.execId,
    };
  }));
  add('Wait', method(WaitRequestSchema, WaitResponseSchema, async (r) => {
    const p = pod.process(r.id, r.execId);
    await p.exited;
    return { exitStatus: p.exitStatus, exitedAt: exitedAt(p) };
  }));
  add('Kill', method(KillRequestSchema, EmptySchema, async (r) => {
    await pod.kill(r.id, r.execId, r.signal);
    return {};
  }));
  add('Delete', method(DeleteRequestSchema, DeleteResponseSchema, async (r) => {
    const p = await pod.delete(r.id, r.execId);
    return { pid: p.pid, exitStatus: p.exitStatus, exitedAt: exitedAt(p) };
  }));
  add('Pids', method(PidsRequestSchema, PidsResponseSchema, (r) => {
    pod.task(r.id);
    return { processes: [{ pid: pod.pid }] };
  }));
  add('Exec', method(ExecProcessRequestSchema, EmptySchema, (r) => {
    pod.exec(r);
    return {};
  }));
  add('ResizePty', method(ResizePtyRequestSchema, EmptySchema, (r) => {
    pod.process(r.id, r.execId);
    return {};
  }));
  add('CloseIO', method(CloseIORequestSchema, EmptySchema, async (r) => {
    if (r.stdin) await pod.closeStdin(r.id, r.execId);
    return {};
  }));
  add('Update', method(UpdateTaskRequestSchema, EmptySchema, (r) => {
    // Resources are sized once at create; accepted so `ctr task update` does not fail.
    pod.task(r.id);
    return {};
  }));
  add('Stats', method(StatsRequestSchema, StatsResponseSchema, (r) => {
    pod.task(r.id);
    return {};
  }));
  add('Connect', method(ConnectRequestSchema, ConnectResponseSchema, (r) => {
    if (r.id !== '') pod.task(r.id);
    return { shimPid: process.pid, taskPid: pod.pid, version: SHIM_VERSION };
  }));
  add('Shutdown', method(ShutdownRequestSchema, EmptySchema, (r) => {
    // containerd asks after each task's delete; the shim stays while the pod has tasks.
    if (r.now || pod.tasks.size === 0) setImmediate(shutdown);
    return {};
  }));
  return m;
}
