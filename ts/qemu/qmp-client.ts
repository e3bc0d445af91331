// A small QMP client over QEMU's unix socket: greeting + capabilities negotiation, commands
// matched to replies by `id` with per-command timeouts, typed errors, and an event stream.
// (No well-kept npm QMP client exists; the protocol is line-delimited JSON.)
import net from 'node:net';
import { errAsync, okAsync, ResultAsync } from 'neverthrow';

export type QmpError =
  | { readonly kind: 'qmp-connect'; readonly socketPath: string; readonly message: string }
  | {
      readonly kind: 'qmp-timeout';
      readonly command: string;
      readonly timeoutMs: number;
      readonly message: string;
    }
  | {
      readonly kind: 'qmp-command';
      readonly command: string;
      readonly errorClass: string;
      readonly desc: string;
      readonly message: string;
    }
  | { readonly kind: 'qmp-closed'; readonly command: string; readonly message: string }
  | { readonly kind: 'qmp-protocol'; readonly message: string };

export interface QmpEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
  readonly timestamp: { readonly seconds: number; readonly microseconds: number };
}

export interface QmpConnectOptions {
  /** Total budget for the socket to appear and the greeting to arrive (default 10 s). */
  readonly timeoutMs?: number;
  /** Stop retrying early when this resolves (e.g. the QEMU process exited). */
  readonly abandon?: Promise<unknown>;
}

interface Pending {
  readonly command: string;
  readonly resolve: (v: { return: unknown } | { error: { class: string; desc: string } }) => void;
  readonly reject: (e: QmpError) => void;
  readonly timer: NodeJS.Timeout;
}

export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function connectOnce(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      s.destroy();
      reject(e);
    });
  });
}

export class QmpClient {
  readonly #socket: net.Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<(e: QmpEvent) => void>();
  #nextId = 1;
  #buffer = '';
  #closed = false;
  #greeting: ((line: Record<string, unknown>) => void) | null = null;
  /** QEMU version from the greeting, e.g. `7.2.0`. */
  version = '';

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.#onData(chunk));
    socket.on('close', () => this.#onClose());
    socket.on('error', () => this.#onClose());
  }

  /** Connects (retrying until the socket accepts), reads the greeting and negotiates capabilities. */
  static connect(
    socketPath: string,
    options: QmpConnectOptions = {},
  ): ResultAsync<QmpClient, QmpError> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const fail = (message: string): QmpError => ({
      kind: 'qmp-connect',
      socketPath,
      message: `QMP ${socketPath}: ${message}`,
    });
    const attempt = async (): Promise<QmpClient> => {
      const deadline = Date.now() + timeoutMs;
      let abandoned = false;
      void options.abandon?.then(() => (abandoned = true));
      let last = 'not tried';
      while (!abandoned && Date.now() < deadline) {
        try {
          const socket = await connectOnce(socketPath);
          const client = new QmpClient(socket);
          const greeting = await client.#awaitGreeting(Math.max(deadline - Date.now(), 100));
          const qemu = (
            greeting.QMP as
              { version?: { qemu?: { major: number; minor: number; micro: number } } } | undefined
          )?.version?.qemu;
          client.version = qemu ? `${qemu.major}.${qemu.minor}.${qemu.micro}` : '';
          const caps = await client.execute('qmp_capabilities', undefined, {
            timeoutMs: Math.max(deadline - Date.now(), 100),
          });
          if (caps.isErr()) {
            client.close();
            throw fail(caps.error.message);
          }
          return client;
        } catch (e) {
          if (typeof e === 'object' && e !== null && 'kind' in e) throw e;
          last = e instanceof Error ? e.message : String(e);
          await sleep(20);
        }
      }
      throw fail(
        abandoned
          ? `gave up: the process went away (${last})`
          : `not ready within ${timeoutMs} ms (${last})`,
      );
    };
    return ResultAsync.fromPromise(attempt(), (e) =>
      typeof e === 'object' && e !== null && 'kind' in e ? (e as QmpError) : fail(String(e)),
    );
  }

  #awaitGreeting(timeoutMs: number): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.close();
        reject(new Error(`no QMP greeting within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#greeting = (line) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('closed before the greeting'));
      });
    });
  }

  /** Runs one command; `return` on success, a typed error otherwise. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): ResultAsync<T, QmpError> {
    if (this.#closed)
      return errAsync({
        kind: 'qmp-closed',
        command,
        message: `QMP ${command}: connection closed`,
      });
    const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    const id = this.#nextId++;
    const reply = new Promise<{ return: unknown } | { error: { class: string; desc: string } }>(
      (resolve, reject) => {
        const timer = setTimeout(() => {
          this.#pending.delete(id);
          reject({
            kind: 'qmp-timeout',
            command,
            timeoutMs,
            message: `QMP ${command}: no reply within ${timeoutMs} ms`,
          } satisfies QmpError);
        }, timeoutMs);
        this.#pending.set(id, { command, resolve, reject, timer });
      },
    );
    this.#socket.write(
      `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
    );
    return ResultAsync.fromPromise(reply, (e) => e as QmpError).andThen((r) => {
      if ('error' in r) {
        const { class: errorClass, desc } = r.error;
        return errAsync<T, QmpError>({
          kind: 'qmp-command',
          command,
          errorClass,
          desc,
          message: `QMP ${command}: ${desc} (${errorClass})`,
        });
      }
      return okAsync(r.return as T);
    });
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The first event named `name` that `match` accepts, from now on. Call it before the command
   * that causes the event so it cannot be missed.
   */
  waitForEvent(
    name: string,
    match: (data: Record<string, unknown>) => boolean = () => true,
    timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
    signal?: AbortSignal,
  ): ResultAsync<QmpEvent, QmpError> {
    const what = `wait for ${name}`;
    const p = new Promise<QmpEvent>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        off();
        this.#socket.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        done();
        reject({
          kind: 'qmp-closed',
          command: what,
          message: `QMP ${what}: abandoned`,
        } satisfies QmpError);
      };
      signal?.addEventListener('abort', onAbort);
      const off = this.onEvent((e) => {
        if (e.event === name && match(e.data)) {
          done();
          resolve(e);
        }
      });
      const onClose = () => {
        done();
        reject({
          kind: 'qmp-closed',
          command: what,
          message: `QMP ${what}: connection closed`,
        } satisfies QmpError);
      };
      const timer = setTimeout(() => {
        done();
        reject({
          kind: 'qmp-timeout',
          command: what,
          timeoutMs,
          message: `QMP ${what}: not seen within ${timeoutMs} ms`,
        } satisfies QmpError);
      }, timeoutMs);
      this.#socket.on('close', onClose);
    });
    return ResultAsync.fromPromise(p, (e) => e as QmpError);
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#socket.destroy();
    this.#onClose();
  }

  #onData(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (line !== '') this.#onLine(line);
    }
  }

  #onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // QEMU only sends JSON; a torn line cannot happen on a stream we split on newlines.
    }
    if ('QMP' in msg) {
      this.#greeting?.(msg);
      this.#greeting = null;
    } else if ('event' in msg) {
      const event = {
        event: String(msg.event),
        data: (msg.data ?? {}) as Record<string, unknown>,
        timestamp: msg.timestamp as QmpEvent['timestamp'],
      };
      for (const l of [...this.#listeners]) l(event);
    } else if (typeof msg.id === 'number') {
      const p = this.#pending.get(msg.id);
      if (p === undefined) return;
      this.#pending.delete(msg.id);
      clearTimeout(p.timer);
      p.resolve(msg as { return: unknown } | { error: { class: string; desc: string } });
    }
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject({
        kind: 'qmp-closed',
        command: p.command,
        message: `QMP ${p.command}: connection closed`,
      });
    }
  }
}
