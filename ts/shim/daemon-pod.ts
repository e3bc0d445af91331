// One pod as the daemon holds it: the pod's Pod and Task methods (ts/shim/pod.ts,
// task-service.ts), its log (the bundle's `log` FIFO containerd reads), its events to its own
// containerd (namespace and TTRPC_ADDRESS from its registration), and its record (shim.json),
// rewritten after every task event. Restoring a pod after a daemon restart puts the recorded
// tasks back, re-opens containerd's stdio FIFOs of running processes and waits for their exit.
import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import path from 'node:path';
import type { DescMessage, MessageInitShape } from '@bufbuild/protobuf';
import { pino, type Logger } from 'pino';
import { Status } from '../gen/containerd/types/task/task_pb.js';
import type { Sandbox, SandboxOptions } from '../lifecycle/sandbox.js';
import type { Register } from './address.js';
import { podRecord, writePodRecord, type PodRecord, type ProcessRecord } from './daemon-record.js';
import { EventPublisher } from './events.js';
import { Pod, type ShimProcess } from './pod.js';
import { StdioBridge } from './stdio.js';
import { taskMethods } from './task-service.js';
import type { MethodHandler } from './ttrpc-server.js';

export { configPathFrom } from './address.js';

/** The bundle's `log` if it is containerd's FIFO (never a planted link or file), else /dev/null. */
export function openPodLog(bundle: string, debug: boolean): Logger {
  let fd = -1;
  const file = path.join(bundle, 'log');
  try {
    // Non-blocking: ENXIO when containerd is not reading instead of hanging; fstat closes the
    // race with a swap after the lstat.
    if (lstatSync(file).isFIFO()) {
      fd = openSync(
        file,
        constants.O_WRONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | constants.O_NOCTTY,
      );
      if (!fstatSync(fd).isFIFO()) {
        closeSync(fd);
        fd = -1;
      }
    }
  } catch {
    fd = -1;
  }
  if (fd === -1) fd = openSync('/dev/null', 'w');
  return pino(
    { name: 'kata-ts-shim', level: debug ? 'debug' : 'info', base: { pid: process.pid } },
    pino.destination({ fd, sync: true }),
  );
}

/** Publishes like EventPublisher and calls `changed` after each event: every task change has one. */
class RecordingPublisher extends EventPublisher {
  constructor(
    register: Register,
    log: Logger,
    private readonly changed: () => void,
  ) {
    super(register.ttrpcAddress, register.namespace, log);
  }

  override publish<D extends DescMessage>(
    topic: string,
    schema: D,
    event: MessageInitShape<D>,
  ): Promise<void> {
    const sent = super.publish(topic, schema, event);
    this.changed();
    return sent;
  }
}

export interface PodHostOptions {
  readonly configPath: string;
  readonly sandbox: SandboxOptions;
  /** `<state root>/<sid>`: where shim.json goes. */
  readonly stateDir: string;
  /** Called when containerd shut this pod's shim down (no tasks left, or `now`). */
  readonly onShutdown: () => void;
}

/** A pod the daemon serves. */
export class PodHost {
  readonly pod: Pod;
  readonly methods: Map<string, MethodHandler>;
  readonly events: EventPublisher;
  readonly log: Logger;
  readonly containers = new Set<string>();

  constructor(
    readonly register: Register,
    private readonly o: PodHostOptions,
  ) {
    this.log = openPodLog(register.bundle, register.debug);
    this.events = new RecordingPublisher(register, this.log, () => this.save());
    this.pod = new Pod(
      register.sandboxId,
      { configPath: o.configPath, sandbox: o.sandbox },
      this.events,
      this.log,
    );
    this.methods = taskMethods(this.pod, o.onShutdown);
    this.containers.add(register.id);
  }

  /** Rewrites shim.json (deferred a tick: the event's state change lands first). */
  save(): void {
    setImmediate(() => {
      const record = podRecord(this.register, this.containers, this.pod);
      if (record === null) return;
      const written = writePodRecord(this.o.stateDir, record);
      // Gone with the sandbox's state dir once it was deleted: nothing left to record.
      if (written.isErr()) this.log.debug({ err: written.error }, 'pod record not written');
    });
  }

  /** Puts the recorded tasks back on the re-attached sandbox and resumes their exit watches. */
  restore(sb: Sandbox, record: PodRecord): void {
    for (const id of record.containers) this.containers.add(id);
    for (const t of record.tasks) {
      const init = this.process(sb, t.id, t.init);
      const execs = new Map(t.execs.map((e) => [e.execId, this.process(sb, t.id, e)]));
      this.pod.tasks.set(t.id, { id: t.id, bundle: t.bundle, init, execs });
    }
    // The watches a created sandbox gets (OOM), once its tasks are known again.
    this.pod.adopt(sb);
  }

  private process(sb: Sandbox, containerId: string, r: ProcessRecord): ShimProcess {
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const p: ShimProcess = {
      containerId,
      execId: r.execId,
      stdio: r.stdio,
      terminal: r.terminal,
      status: r.status,
      pid: sb.vm.vm.pid,
      exitStatus: r.exitStatus,
      exitedAt: r.exitedAt === null ? null : new Date(r.exitedAt),
      bridge: null,
      exited,
      markExited,
      ...(r.spec !== undefined ? { spec: r.spec } : {}),
    };
    if (p.status === Status.STOPPED) markExited();
    if (p.status === Status.RUNNING) {
      // containerd's FIFOs are still there (it holds them for the task's life): opened again.
      p.bridge = new StdioBridge(sb.agent, containerId, r.execId, r.stdio, this.log, r.terminal);
      void this.pod.watchExit(sb, p);
    }
    return p;
  }

  /** Closes the pod's event connection and log. */
  async close(): Promise<void> {
    await this.events.close();
    this.log.flush?.();
  }
}
