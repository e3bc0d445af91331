// The daemon's request router: every `containerd.task.v2.Task` request names its container in
// field 1 (`id`), which `start` registered to its pod; the request goes, undecoded, to that pod's
// own Task methods (ts/shim/task-service.ts). A pod's Shutdown releases that pod alone; once no
// pod is left, the daemon is idle and ends (after a grace period a new `start` cancels).
// `kata-ts.shim.v1.Daemon/Register` (from `start`) and `/Release` (from `delete`) carry JSON.
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { err, ok, type Result } from 'neverthrow';
import { parseJsonText } from '../input/json-text.js';
import { deleteSandbox, type SandboxOptions } from '../lifecycle/sandbox.js';
import type { StateStore } from '../lifecycle/state-store.js';
import {
  DAEMON_SERVICE,
  NOT_HELD,
  RegisterSchema,
  ReleaseSchema,
  type Register,
} from './address.js';
import { attachInput, readPodRecord } from './daemon-record.js';
import { PodHost } from './daemon-pod.js';
import { attachSandbox } from '../lifecycle/sandbox-attach.js';
import { SHIM_VERSION, TASK_SERVICE } from './task-service.js';
import { create, toBinary } from '@bufbuild/protobuf';
import { ConnectResponseSchema } from '../gen/containerd/task/v2/shim_pb.js';
import { Code, type MethodHandler, type MethodTable, type RpcStatus } from './ttrpc-server.js';

/** How long an idle daemon waits for a new pod before it ends. */
export const IDLE_GRACE_MS = 3_000;

/** Field 1 (`id`) of a Task request, or null when absent or malformed. */
export function requestId(payload: Uint8Array): string | null {
  try {
    const r = new BinaryReader(payload);
    while (r.pos < r.len) {
      const [field, type] = r.tag();
      if (field === 1 && type === WireType.LengthDelimited) return r.string();
      r.skip(type);
    }
  } catch {
    // malformed: the pod's method would say so, but there is no pod to ask
  }
  return null;
}

const status = (code: number, message: string): RpcStatus => ({ code, message });

export interface RouterOptions {
  readonly sandbox: SandboxOptions;
  readonly store: StateStore;
  /** Called once the last pod went and no new one came within IDLE_GRACE_MS. */
  readonly onIdle: () => void;
}

export class DaemonRouter implements MethodTable {
  readonly pods = new Map<string, PodHost>();
  /** container id → sandbox id */
  private readonly owners = new Map<string, string>();
  private idleTimer: NodeJS.Timeout | null = null;

  constructor(private readonly o: RouterOptions) {}

  private host(register: Register): PodHost {
    const sid = register.sandboxId;
    const dir = this.o.store.dir(sid)._unsafeUnwrap();
    return new PodHost(register, {
      configPath: register.configPath,
      sandbox: this.o.sandbox,
      stateDir: dir,
      onShutdown: () => void this.drop(sid),
    });
  }

  /** `start`: the container's pod, made for the sandbox's own container, joined by the others. */
  register(r: Register): Result<void, RpcStatus> {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const owner = this.owners.get(r.id);
    if (owner !== undefined && owner !== r.sandboxId)
      return err(status(Code.ALREADY_EXISTS, `container ${r.id} belongs to sandbox ${owner}`));
    let pod = this.pods.get(r.sandboxId);
    if (pod !== undefined && pod.register.namespace !== r.namespace)
      return err(
        status(
          Code.ALREADY_EXISTS,
          `sandbox ${r.sandboxId} is served for namespace ${pod.register.namespace}`,
        ),
      );
    if (pod === undefined) {
      if (r.id !== r.sandboxId)
        return err(
          status(Code.FAILED_PRECONDITION, `the shim of sandbox ${r.sandboxId} is not running`),
        );
      pod = this.host(r);
      this.pods.set(r.sandboxId, pod);
    }
    pod.containers.add(r.id);
    this.owners.set(r.id, r.sandboxId);
    pod.save();
    return ok(undefined);
  }

  /** Forgets the pod (containerd shut it down); the daemon goes idle when it was the last. */
  private async drop(sid: string): Promise<void> {
    const pod = this.pods.get(sid);
    if (pod === undefined) return;
    this.pods.delete(sid);
    for (const id of pod.containers) if (this.owners.get(id) === sid) this.owners.delete(id);
    await pod.close();
    if (this.pods.size === 0 && this.idleTimer === null) {
      this.idleTimer = setTimeout(() => {
        this.idleTimer = null;
        if (this.pods.size === 0) this.o.onIdle();
      }, IDLE_GRACE_MS);
    }
  }

  /**
   * `delete` after containerd lost the shim: the sandbox is taken down here, where it is held,
   * rather than by a cleanup that would kill this (shared) process as the sandbox's owner.
   */
  async release(sid: string, namespace: string): Promise<Result<void, RpcStatus>> {
    const pod = this.pods.get(sid);
    // `delete` then cleans up itself (NOT_HELD): this daemon is not the sandbox's owner.
    if (pod === undefined) return err(status(Code.NOT_FOUND, `${sid}: ${NOT_HELD}`));
    // Another namespace's pod of the same id: neither released here nor cleaned up by `delete`.
    if (pod.register.namespace !== namespace)
      return err(
        status(
          Code.FAILED_PRECONDITION,
          `sandbox ${sid} is served for namespace ${pod.register.namespace}`,
        ),
      );
    const sb = pod.pod.sandbox;
    pod.pod.sandbox = null;
    await this.drop(sid);
    if (sb === null) return ok(undefined);
    const deleted = await deleteSandbox(sb);
    return deleted.isErr() ? err(status(Code.INTERNAL, deleted.error.message)) : ok(undefined);
  }

  /** Re-attaches every sandbox a previous daemon recorded; returns what could not be. */
  async recover(): Promise<string[]> {
    const problems: string[] = [];
    await Promise.all(
      this.o.store.list().map(async (sid) => {
        const dir = this.o.store.dir(sid);
        if (dir.isErr()) return;
        const record = readPodRecord(dir.value);
        if (record.isErr()) return; // not a daemon's pod (kata-ts create, or not created yet)
        const attached = await attachSandbox(
          this.o.store,
          sid,
          attachInput(record.value),
          this.o.sandbox,
        );
        if (attached.isErr()) {
          problems.push(`${sid}: ${attached.error.message}`);
          // Not held here: `delete` cleans it up, and must not take this daemon for its owner.
          this.o.store.update(sid, (s) => ({ ...s, owner: null }));
          return;
        }
        const pod = this.host(record.value.register);
        pod.restore(attached.value, record.value);
        this.pods.set(sid, pod);
        for (const id of pod.containers) this.owners.set(id, sid);
        pod.save();
      }),
    );
    return problems;
  }

  private podOf(payload: Uint8Array): PodHost | RpcStatus {
    const id = requestId(payload);
    if (id === null) return status(Code.INVALID_ARGUMENT, 'request without a container id');
    const sid = this.owners.get(id);
    const pod = sid === undefined ? undefined : this.pods.get(sid);
    return pod ?? status(Code.NOT_FOUND, `task ${id} not found`);
  }

  private task(method: string): MethodHandler {
    return async (payload, timeoutNano) => {
      // Connect without an id asks about the shim itself.
      if (method === 'Connect' && !requestId(payload))
        return ok(
          toBinary(
            ConnectResponseSchema,
            create(ConnectResponseSchema, { shimPid: process.pid, version: SHIM_VERSION }),
          ),
        );
      const pod = this.podOf(payload);
      if (!(pod instanceof PodHost)) {
        // Shutdown of a pod already released: nothing left to shut down.
        if (method === 'Shutdown' && (pod as RpcStatus).code === Code.NOT_FOUND)
          return ok(new Uint8Array());
        return err(pod as RpcStatus);
      }
      const handler = pod.methods.get(`${TASK_SERVICE}/${method}`);
      if (handler === undefined)
        return err(status(Code.UNIMPLEMENTED, `${TASK_SERVICE}/${method} is not implemented`));
      return handler(payload, timeoutNano);
    };
  }

  private daemon(method: string): MethodHandler | undefined {
    const json = (payload: Uint8Array): unknown => {
      const parsed = parseJsonText(Buffer.from(payload).toString('utf8'));
      return parsed.isOk() ? parsed.value : undefined;
    };
    if (method === 'Register')
      return async (payload) => {
        const r = RegisterSchema.safeParse(json(payload));
        if (!r.success) return err(status(Code.INVALID_ARGUMENT, 'malformed Register'));
        return this.register(r.data).map(() => new Uint8Array());
      };
    if (method === 'Release')
      return async (payload) => {
        const r = ReleaseSchema.safeParse(json(payload));
        if (!r.success) return err(status(Code.INVALID_ARGUMENT, 'malformed Release'));
        return (await this.release(r.data.sandboxId, r.data.namespace)).map(() => new Uint8Array());
      };
    return undefined;
  }

  /** The handler for `service/method` (MethodTable). */
  get(key: string): MethodHandler | undefined {
    const slash = key.lastIndexOf('/');
    const [service, method] = [key.slice(0, slash), key.slice(slash + 1)];
    if (service === TASK_SERVICE) return this.task(method);
    if (service === DAEMON_SERVICE) return this.daemon(method);
    return undefined;
  }
}
