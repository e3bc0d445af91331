// The tasks of one pod, as the long-running shim holds them: the first container (the sandbox's
// own) creates the VM through the lifecycle, later ones join it. Each task is an init process
// plus execs; a process's exit (WaitProcess in the guest, then its output drained) resolves its
// waiters and publishes TaskExit. Every operation returns a Result with a TaskError; the server
// edge (task-service.ts) maps it to a ttrpc status.
import { err, ok, type Result } from 'neverthrow';
import path from 'node:path';
import type { Logger } from 'pino';
import { errorLine } from '../input/escape-text.js';
import {
  addContainer,
  kill,
  removeContainer,
  startContainer,
  wait,
} from '../lifecycle/container.js';
import type { LifecycleError } from '../lifecycle/errors.js';
import {
  createSandbox,
  deleteSandbox,
  type Sandbox,
  type SandboxOptions,
} from '../lifecycle/sandbox.js';
import { Status } from '../gen/containerd/types/task/task_pb.js';
import type { CreateTaskRequest, ExecProcessRequest } from '../gen/containerd/task/v2/shim_pb.js';
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskStartSchema,
} from '../gen/containerd/events/task_pb.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EventPublisher } from './events.js';
import { execRequest } from './exec-spec.js';
import { replaceFile } from '../input/replace-file.js';
import { rootfsMounts } from './rootfs.js';
import { StdioBridge, type StdioPaths } from './stdio.js';
import { watchOom } from './oom-watch.js';
import type { TaskError } from './task-error.js';

export interface ShimProcess {
  readonly containerId: string;
  readonly execId: string;
  readonly stdio: StdioPaths;
  /** A pty in the guest: output comes on stdout alone (containerd gives no stderr FIFO). Absent: none. */
  readonly terminal?: boolean;
  status: Status;
  /** The host pid standing for the process (the VM's), fixed when it is created. */
  pid: number;
  exitStatus: number;
  exitedAt: Date | null;
  bridge: StdioBridge | null;
  exited: Promise<void>;
  markExited: () => void;
  /** Exec only: the OCI process JSON from containerd (ResizePty before start sets its size). */
  spec?: unknown;
}

export interface ShimTask {
  readonly id: string;
  readonly bundle: string;
  readonly init: ShimProcess;
  readonly execs: Map<string, ShimProcess>;
}

export interface PodOptions {
  readonly configPath: string;
  readonly sandbox: SandboxOptions;
}

function newProcess(
  containerId: string,
  execId: string,
  stdio: ShimProcess['stdio'],
  terminal: boolean,
  spec?: unknown,
): ShimProcess {
  let markExited!: () => void;
  const exited = new Promise<void>((r) => (markExited = r));
  return {
    containerId,
    execId,
    stdio,
    terminal,
    status: Status.CREATED,
    pid: 0,
    exitStatus: 0,
    exitedAt: null,
    bridge: null,
    exited,
    markExited,
    ...(spec !== undefined ? { spec } : {}),
  };
}

const notFound = (message: string): TaskError => ({ kind: 'not-found', message });
const precondition = (message: string): TaskError => ({ kind: 'failed-precondition', message });
const lifecycle = (error: LifecycleError): TaskError => ({ kind: 'lifecycle', error });
const agentError =
  (what: string) =>
  (e: { message: string }): TaskError => ({ kind: 'agent', message: `${what}: ${e.message}` });

export class Pod {
  sandbox: Sandbox | null = null;
  readonly tasks = new Map<string, ShimTask>();

  constructor(
    readonly sandboxId: string,
    private readonly options: PodOptions,
    private readonly events: EventPublisher,
    private readonly log: Logger,
  ) {}

  /** The VM's pid stands for every process (Kata does the same: guest pids mean nothing on the host). */
  get pid(): number {
    return this.sandbox?.vm.vm.pid ?? process.pid;
  }

  task(id: string): Result<ShimTask, TaskError> {
    const t = this.tasks.get(id);
    return t === undefined ? err(notFound(`task ${id} not found`)) : ok(t);
  }

  process(id: string, execId: string): Result<ShimProcess, TaskError> {
    return this.task(id).andThen((t) => {
      if (execId === '') return ok(t.init);
      const p = t.execs.get(execId);
      return p === undefined ? err(notFound(`exec ${execId} of task ${id} not found`)) : ok(p);
    });
  }

  /**
   * Takes over a running sandbox (a daemon re-attaching after a restart) with the watches a
   * created one gets: the OOM loop.
   */
  adopt(sb: Sandbox): void {
    this.sandbox = sb;
    void watchOom(sb.agent, this, this.events, this.log);
  }

  /** Whether `id` is one of this pod's tasks (the OOM watch asks). */
  hasContainer(id: string): boolean {
    return this.tasks.has(id);
  }

  requireSandbox(): Result<Sandbox, TaskError> {
    return this.sandbox === null
      ? err(precondition(`sandbox ${this.sandboxId} is not running`))
      : ok(this.sandbox);
  }

  /** The sandbox for `id`'s create: made here for the sandbox's own container, joined otherwise. */
  private async sandboxFor(req: CreateTaskRequest): Promise<Result<Sandbox, TaskError>> {
    if (this.sandbox !== null) return ok(this.sandbox);
    if (req.id !== this.sandboxId)
      return err(
        precondition(`container ${req.id} of sandbox ${this.sandboxId} created before the sandbox`),
      );
    const input = { sandboxId: req.id, configPath: this.options.configPath, bundle: req.bundle };
    const created = await createSandbox(input, this.options.sandbox);
    if (created.isErr()) return err(lifecycle(created.error));
    this.adopt(created.value);
    return ok(created.value);
  }

  async create(req: CreateTaskRequest): Promise<Result<number, TaskError>> {
    if (this.tasks.has(req.id))
      return err({ kind: 'already-exists', message: `task ${req.id} already exists` });
    // The lifecycle mounts these at <bundle>/rootfs and binds them into the shared dir, recording
    // both in the sandbox state, so a crashed shim's mounts are found by cleanup.
    // A planted rootfs-mounts.json symlink or FIFO is replaced, never followed or opened.
    const written = replaceFile(
      path.join(req.bundle, 'rootfs-mounts.json'),
      JSON.stringify(rootfsMounts(req.rootfs)),
      0o600,
    );
    if (written.isErr())
      return err({
        kind: 'failed-precondition',
        message: errorLine(written.error.path, written.error.what),
      });
    const sandbox = await this.sandboxFor(req);
    if (sandbox.isErr()) return err(sandbox.error);
    const sb = sandbox.value;
    const added = await addContainer(sb, { id: req.id, bundle: req.bundle });
    if (added.isErr()) {
      if (req.id === this.sandboxId) {
        // The sandbox was made for this container alone: take it down, state and all.
        this.sandbox = null;
        const deleted = await deleteSandbox(sb);
        if (deleted.isErr())
          this.log.warn(
            { id: req.id, err: deleted.error.message },
            'removing the failed sandbox failed',
          );
      }
      return err(lifecycle(added.error));
    }
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr };
    const init = newProcess(req.id, '', stdio, req.terminal);
    init.pid = this.pid;
    this.tasks.set(req.id, { id: req.id, bundle: req.bundle, init, execs: new Map() });
    void this.events.publish('/tasks/create', TaskCreateSchema, {
      containerId: req.id,
      bundle: req.bundle,
      rootfs: req.rootfs,
      io: { ...stdio, terminal: req.terminal },
      pid: this.pid,
    });
    return ok(this.pid);
  }

  async start(id: string, execId: string): Promise<Result<number, TaskError>> {
    const found = this.requireSandbox().andThen((a) =>
      this.process(id, execId).map((b) => [a, b] as const),
    );
    if (found.isErr()) return err(found.error);
    const [sb, p] = found.value;
    if (p.status !== Status.CREATED)
      return err(precondition(`process ${execId || id} is not in the created state`));
    const started =
      execId === ''
        ? await startContainer(sb, id).mapErr(lifecycle)
        : await sb.agent
            .execProcess(execRequest(id, execId, p.spec))
            .mapErr(agentError(`exec ${execId} of ${id}`));
    if (started.isErr()) return err(started.error);
    p.status = Status.RUNNING;
    p.bridge = new StdioBridge(sb.agent, id, execId, p.stdio, this.log, p.terminal);
    void this.watchExit(sb, p);
    if (execId === '')
      void this.events.publish('/tasks/start', TaskStartSchema, { containerId: id, pid: p.pid });
    else
      void this.events.publish('/tasks/exec-started', TaskExecStartedSchema, {
        containerId: id,
        execId,
        pid: p.pid,
      });
    return ok(p.pid);
  }

  /**
   * The exit watch: WaitProcess in the guest, output drained, TaskExit published. Also the shim
   * daemon's, for the running processes of a re-attached pod.
   */
  async watchExit(sb: Sandbox, p: ShimProcess): Promise<void> {
    const status =
      p.execId === ''
        ? await wait(sb, p.containerId)
        : await sb.agent.waitProcess(p.containerId, p.execId);
    if (status.isErr())
      this.log.warn(
        { id: p.containerId, execId: p.execId, err: status.error.message },
        'wait failed',
      );
    // Output still in flight belongs before the exit: ctr prints it, then returns.
    await Promise.race([p.bridge?.done, new Promise((r) => setTimeout(r, 5_000).unref())]);
    p.status = Status.STOPPED;
    p.exitStatus = status.isOk() ? status.value : 255;
    p.exitedAt = new Date();
    await this.events.publish('/tasks/exit', TaskExitSchema, {
      containerId: p.containerId,
      id: p.execId || p.containerId,
      pid: p.pid,
      exitStatus: p.exitStatus,
      exitedAt: timestampFromDate(p.exitedAt),
    });
    p.markExited();
  }

  exec(req: ExecProcessRequest): Result<void, TaskError> {
    const found = this.task(req.id);
    if (found.isErr()) return err(found.error);
    const t = found.value;
    if (t.execs.has(req.execId))
      return err({ kind: 'already-exists', message: `exec ${req.execId} already exists` });
    let spec: unknown;
    try {
      spec = JSON.parse(Buffer.from(req.spec?.value ?? new Uint8Array()).toString('utf8') || '{}');
    } catch {
      return err({
        kind: 'invalid-argument',
        message: `exec ${req.execId} of ${req.id}: the process spec is not JSON`,
      });
    }
    const p = newProcess(
      req.id,
      req.execId,
      { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr },
      req.terminal,
      spec,
    );
    p.pid = this.pid;
    t.execs.set(req.execId, p);
    void this.events.publish('/tasks/exec-added', TaskExecAddedSchema, {
      containerId: req.id,
      execId: req.execId,
    });
    return ok(undefined);
  }

  /** Signals one process; with `all`, every running process of the container (its execs, then its init). */
  async kill(
    id: string,
    execId: string,
    signal: number,
    all: boolean,
  ): Promise<Result<void, TaskError>> {
    if (all && execId !== '')
      return err({
        kind: 'invalid-argument',
        message: `kill ${id}: "all" applies to the container, not to exec ${execId}`,
      });
    const found = this.requireSandbox().andThen((a) =>
      this.process(id, execId).map((b) => [a, b] as const),
    );
    if (found.isErr()) return err(found.error);
    const [sb, p] = found.value;
    if (all) {
      for (const e of this.tasks.get(id)?.execs.values() ?? []) {
        if (e.status !== Status.RUNNING) continue;
        const sent = await sb.agent
          .signalProcess(id, e.execId, signal)
          .mapErr(agentError(`kill exec ${e.execId} of ${id}`));
        if (sent.isErr()) return err(sent.error);
      }
    }
    if (p.status === Status.STOPPED) return ok(undefined);
    return execId === ''
      ? (await kill(sb, id, signal)).mapErr(lifecycle)
      : (await sb.agent.signalProcess(id, execId, signal)).mapErr(
          agentError(`kill exec ${execId} of ${id}`),
        );
  }

  closeStdin(id: string, execId: string): Result<void, TaskError> {
    // Not awaited: the FIFO's writer decides when it is drained.
    return this.process(id, execId).map((p) => void p.bridge?.closeIO());
  }

  /**
   * Removes an exec or a task; the sandbox's own task takes the VM with it. A failed removal is
   * an error (containerd retries Delete; the task is gone from here, so the retry sees NOT_FOUND
   * and containerd runs `shim delete`, which cleans what is recorded in the state).
   */
  async delete(id: string, execId: string): Promise<Result<ShimProcess, TaskError>> {
    const found = this.task(id).andThen((a) =>
      this.process(id, execId).map((b) => [a, b] as const),
    );
    if (found.isErr()) return err(found.error);
    const [t, p] = found.value;
    if (p.status === Status.RUNNING)
      return err(precondition(`process ${execId || id} is still running`));
    if (execId !== '') {
      t.execs.delete(execId);
      return ok(p);
    }
    this.tasks.delete(id);
    const sb = this.sandbox;
    const failures: LifecycleError[] = [];
    if (sb !== null) {
      const removed = await removeContainer(sb, id);
      if (removed.isErr()) failures.push(removed.error);
      if (id === this.sandboxId) {
        this.sandbox = null;
        const deleted = await deleteSandbox(sb);
        if (deleted.isErr()) failures.push(deleted.error);
      }
    }
    const exitedAt = timestampFromDate(p.exitedAt ?? new Date());
    void this.events.publish('/tasks/delete', TaskDeleteSchema, {
      containerId: id,
      pid: p.pid,
      exitStatus: p.exitStatus,
      exitedAt,
      id,
    });
    const [first, ...rest] = failures;
    if (first === undefined) return ok(p);
    return err(
      lifecycle(
        rest.length === 0
          ? first
          : { ...first, message: [first, ...rest].map((f) => f.message).join('; ') },
      ),
    );
  }
}
