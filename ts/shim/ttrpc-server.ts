// A ttrpc server for the shim: the native server (crates/transport/src/server.rs) hands every
// request to one async handler, keyed here by `service/method`. Methods decode and encode their
// own messages; a method not registered answers UNIMPLEMENTED, a method that throws answers
// UNKNOWN with the message, and a `TtrpcStatus` thrown or returned answers that status.
import { ResultAsync } from 'neverthrow';
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
export class TtrpcStatus extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** One method: encoded request in, encoded response out. `timeoutNano` 0 = no deadline. */
export type MethodHandler = (payload: Uint8Array, timeoutNano: number) => Promise<Uint8Array>;

/** `service/method` → handler. */
export type Methods = ReadonlyMap<string, MethodHandler>;

/** A listening server; keeps node alive until closed. */
export class TtrpcServer {
  private static readonly open = new Set<TtrpcServer>();

  private constructor(private readonly native: NativeTtrpcServer) {
    // Held until close: a server object collected while listening would close the socket.
    TtrpcServer.open.add(this);
  }

  /** Listens on the unix socket `path` (which must not exist). */
  static listen(path: string, methods: Methods): ResultAsync<TtrpcServer, NativeError> {
    const handler = async (req: { service: string; method: string; payload: Buffer; timeoutNano: number }) => {
      const method = methods.get(`${req.service}/${req.method}`);
      if (method === undefined) return { code: Code.UNIMPLEMENTED, message: `${req.service}/${req.method} is not implemented` };
      try {
        return { payload: Buffer.from(await method(req.payload, req.timeoutNano)) };
      } catch (e) {
        if (e instanceof TtrpcStatus) return { code: e.code, message: e.message };
        return { code: Code.UNKNOWN, message: e instanceof Error ? e.message : String(e) };
      }
    };
    return callAsync((n) => n.listenTtrpc(path, handler)).map((s) => new TtrpcServer(s));
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

  get path(): string {
    return this.native.path;
  }
}
