// The tasks of one pod, as the long-running shim holds them: the first container (the sandbox's
// own) creates the VM through the lifecycle, later ones join it. Each task is an init process
// plus execs; a process's exit (WaitProcess in the guest, then its output drained) resolves its
// waiters and publishes TaskExit. Errors carry ttrpc status codes for containerd.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { addContainer, kill, removeContainer, startContainer, wait } from '../lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../lifecycle/errors.js';
import { createSandbox, deleteSandbox, type Sandbox, type SandboxOptions } from '../lifecycle/sandbox.js';
import { Status } from '../gen/containerd/types/task/task_pb.js';
import type { CreateTaskRequest, ExecProcessRequest } from '../gen/containerd/task/v2/shim_pb.js';
import { TaskCreateSchema, TaskDeleteSchema, TaskExecAddedSchema, TaskExecStartedSchema, TaskExitSchema, TaskStartSchema } from '../gen/containerd/events/task_pb.js';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { EventPublisher } from './events.js';
import { execRequest } from './exec-spec.js';
import { rootfsMounts } from './rootfs.js';
import { StdioBridge, type StdioPaths } from './stdio.js';
import { Code, TtrpcStatus } from './ttrpc-server.js';

export interface ShimProcess {
  readonly containerId: string;
  readonly execId: string;
  readonly stdio: StdioPaths & { readonly terminal: boolean };
  status: Status;
  /** The host pid standing for the process (the VM's), fixed when it is created. */
  pid: number;
  exitStatus: number;
  exitedAt: Date | null;
  bridge: StdioBridge | null;
  exited: Promise<void>;
  markExited: () => void;
  /** Exec only: the OCI process JSON from containerd. */
  readonly spec?: unknown;
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

function newProcess(containerId: string, execId: string, stdio: ShimProcess['stdio'], spec?: unknown): ShimProcess {
  let markExited!: () => void;
  const exited = new Promise<void>((r) => (markExited = r));
  return { containerId, execId, stdio, status: Status.CREATED, pid: 0, exitStatus: 0, exitedAt: null, bridge: null, exited, markExited, ...(spec !== undefined ? { spec } : {}) };
}

const failed = (code: number) => (e: LifecycleError | { message: string } | string): never => {
  if (typeof e === 'string') throw new TtrpcStatus(code, e);
  throw new TtrpcStatus(code, 'kind' in e ? formatLifecycleError(e).join('; ') : e.message);
};

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

  task(id: string): ShimTask {
    const t = this.tasks.get(id);
    if (t === undefined) throw new TtrpcStatus(Code.NOT_FOUND, `task ${id} not found`);
    return t;
  }

  process(id: string, execId: string): ShimProcess {
    const t = this.task(id);
    if (execId === '') return t.init;
    const p = t.execs.get(execId);
    if (p === undefined) throw new TtrpcStatus(Code.NOT_FOUND, `exec ${execId} of task ${id} not found`);
    return p;
  }

  private requireSandbox(): Sandbox {
    if (this.sandbox === null) throw new TtrpcStatus(Code.FAILED_PRECONDITION, `sandbox ${this.sandboxId} is not running`);
    return this.sandbox;
  }

  async create(req: CreateTaskRequest): Promise<number> {
    if (this.tasks.has(req.id)) throw new TtrpcStatus(Code.ALREADY_EXISTS, `task ${req.id} already exists`);
    // The lifecycle mounts these at <bundle>/rootfs and binds them into the shared dir, recording
    // both in the sandbox state, so a crashed shim's mounts are found by cleanup.
    writeFileSync(path.join(req.bundle, 'rootfs-mounts.json'), JSON.stringify(rootfsMounts(req.rootfs)));
    if (this.sandbox === null) {
      if (req.id !== this.sandboxId) throw new TtrpcStatus(Code.FAILED_PRECONDITION, `container ${req.id} of sandbox ${this.sandboxId} created before the sandbox`);
      const input = { sandboxId: req.id, configPath: this.options.configPath, bundle: req.bundle };
      this.sandbox = (await createSandbox(input, this.options.sandbox)).match((s) => s, failed(Code.INTERNAL));
    }
    const sb = this.sandbox;
    const added = await addContainer(sb, { id: req.id, bundle: req.bundle });
    if (added.isErr() && req.id === this.sandboxId) {
      await deleteSandbox(sb);
      this.sandbox = null;
    }
    added.match(() => undefined, failed(Code.INTERNAL));
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    const init = newProcess(req.id, '', stdio);
    init.pid = this.pid;
    this.tasks.set(req.id, { id: req.id, bundle: req.bundle, init, execs: new Map() });
    void this.events.publish('/tasks/create', TaskCreateSchema, { containerId: req.id, bundle: req.bundle, rootfs: req.rootfs, io: stdio, pid: this.pid });
    return this.pid;
  }

  async start(id: string, execId: string): Promise<number> {
    const sb = this.requireSandbox();
    const p = this.process(id, execId);
    if (p.status !== Status.CREATED) throw new TtrpcStatus(Code.FAILED_PRECONDITION, `process ${execId || id} is not in the created state`);
    if (execId === '') {
      (await startContainer(sb, id)).match(() => undefined, failed(Code.INTERNAL));
    } else {
      (await sb.agent.execProcess(execRequest(id, execId, p.spec))).match(() => undefined, failed(Code.INTERNAL));
    }
    p.status = Status.RUNNING;
    p.bridge = new StdioBridge(sb.agent, id, execId, p.stdio, this.log);
    void this.watchExit(sb, p);
    if (execId === '') void this.events.publish('/tasks/start', TaskStartSchema, { containerId: id, pid: p.pid });
    else void this.events.publish('/tasks/exec-started', TaskExecStartedSchema, { containerId: id, execId, pid: p.pid });
    return p.pid;
  }

  private async watchExit(sb: Sandbox, p: ShimProcess): Promise<void> {
    const status = p.execId === '' ? await wait(sb, p.containerId) : await sb.agent.waitProcess(p.containerId, p.execId);
    if (status.isErr()) this.log.warn({ id: p.containerId, execId: p.execId, err: status.error.message }, 'wait failed');
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

  exec(req: ExecProcessRequest): void {
    const t = this.task(req.id);
    if (t.execs.has(req.execId)) throw new TtrpcStatus(Code.ALREADY_EXISTS, `exec ${req.execId} already exists`);
    if (req.terminal) throw new TtrpcStatus(Code.UNIMPLEMENTED, 'exec with a terminal is not supported');
    const spec: unknown = JSON.parse(Buffer.from(req.spec?.value ?? new Uint8Array()).toString('utf8') || '{}');
    const p = newProcess(req.id, req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: false }, spec);
    p.pid = this.pid;
    t.execs.set(req.execId, p);
    void this.events.publish('/tasks/exec-added', TaskExecAddedSchema, { containerId: req.id, execId: req.execId });
  }

  async kill(id: string, execId: string, signal: number): Promise<void> {
    const sb = this.requireSandbox();
    const p = this.process(id, execId);
    if (p.status === Status.STOPPED) return;
    const sent = execId === '' ? await kill(sb, id, signal) : await sb.agent.signalProcess(id, execId, signal);
    sent.match(() => undefined, failed(Code.INTERNAL));
  }

  async closeStdin(id: string, execId: string): Promise<void> {
    // Not awaited: the FIFO's writer decides when it is drained.
    void this.process(id, execId).bridge?.closeIO();
  }

  /** Removes an exec or a task; the sandbox's own task takes the VM with it. */
  async delete(id: string, execId: string): Promise<ShimProcess> {
    const t = this.task(id);
    const p = this.process(id, execId);
    if (p.status === Status.RUNNING) throw new TtrpcStatus(Code.FAILED_PRECONDITION, `process ${execId || id} is still running`);
    if (execId !== '') {
      t.execs.delete(execId);
      return p;
    }
    const sb = this.sandbox;
    if (sb !== null) (await removeContainer(sb, id)).match(() => undefined, (e) => this.log.warn({ id, err: e.message }, 'remove container failed'));
    this.tasks.delete(id);
    if (id === this.sandboxId && sb !== null) {
      (await deleteSandbox(sb)).match(() => undefined, (e) => this.log.warn({ id, err: e.message }, 'delete sandbox failed'));
      this.sandbox = null;
    }
    const exitedAt = timestampFromDate(p.exitedAt ?? new Date());
    void this.events.publish('/tasks/delete', TaskDeleteSchema, { containerId: id, pid: p.pid, exitStatus: p.exitStatus, exitedAt, id });
    return p;
  }
}
