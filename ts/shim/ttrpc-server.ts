// A ttrpc server for the shim: the native server (crates/transport/src/server.rs) hands every
// request to one async handler, keyed here by `service/method`. Methods decode and encode their
// own messages and return a Result: Ok bytes, or Err with a google.rpc status, which is the only
// place a failure becomes a ttrpc code. A method not registered answers UNIMPLEMENTED; a method
// that throws (a bug) answers UNKNOWN with the message. The native side creates the socket 0600
// whatever the umask and serves only root and this process's uid (SO_PEERCRED).
import { ResultAsync, type Result } from 'neverthrow';
import { callAsync, type NativeAddon, type NativeError } from '../native.js';

export type NativeTtrpcServer = Awaited<ReturnType<NativeAddon['listenTtrpc']>>;

/** google.rpc.Code values the shim answers with. */
export const Code = {
  OK: 0,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A non-OK answer. containerd maps NOT_FOUND, ALREADY_EXISTS, … to its errdefs. */
export interface RpcStatus {
  readonly code: number;
  readonly message: string;
}

/** One method: encoded request in, encoded response or a status out. `timeoutNano` 0 = no deadline. */
export type MethodHandler = (
  payload: Uint8Array,
  timeoutNano: number,
) => Promise<Result<Uint8Array, RpcStatus>>;

/** `service/method` → handler: a Map, or a router that finds the handler per request. */
export interface MethodTable {
  get(key: string): MethodHandler | undefined;
}
export type Methods = MethodTable;

/** Who may connect: uids besides which every peer is disconnected (default root and our euid). */
export interface ListenOptions {
  readonly allowedUids?: readonly number[];
}

/** A listening server; keeps node alive until closed. */
export class TtrpcServer {
  private static readonly open = new Set<TtrpcServer>();

  private constructor(private readonly native: NativeTtrpcServer) {
    // Held until close: a server object collected while listening would close the socket.
    TtrpcServer.open.add(this);
  }

  /** Listens on the unix socket `path` (which must not exist), mode 0600. */
  static listen(
    path: string,
    methods: Methods,
    options: ListenOptions = {},
  ): ResultAsync<TtrpcServer, NativeError> {
    const handler = async (req: {
      service: string;
      method: string;
      payload: Buffer;
      timeoutNano: number;
    }) => {
      const method = methods.get(`${req.service}/${req.method}`);
      if (method === undefined)
        return {
          code: Code.UNIMPLEMENTED,
          message: `${req.service}/${req.method} is not implemented`,
        };
      try {
        return (await method(req.payload, req.timeoutNano)).match(
          (payload) => ({ payload: Buffer.from(payload) }),
          (status) => ({ code: status.code, message: status.message }),
        );
      } catch (e) {
        return { code: Code.UNKNOWN, message: e instanceof Error ? e.message : String(e) };
      }
    };
    const uids = options.allowedUids === undefined ? undefined : [...options.allowedUids];
    return callAsync((n) => n.listenTtrpc(path, handler, uids)).map((s) => new TtrpcServer(s));
  }

  /** Closes the socket, every connection and pending call. Idempotent. */
  close(): void {
    this.native.close();
    TtrpcServer.open.delete(this);
  }

  get closed(): boolean {
    return this.native.closed;
  }

  /** Connections currently open. */
  get connections(): number {
    return this.native.connections;
  }

  /** Connections closed on accept because the peer's uid is not allowed. */
  get refused(): number {
    return this.native.refused;
  }

  get path(): string {
    return this.native.path;
  }
}
