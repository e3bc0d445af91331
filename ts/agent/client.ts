// Typed client for the Kata agent (grpc.AgentService, grpc.Health) over one native ttrpc
// connection. Requests and responses are encoded with the generated ts/gen schemas; every call
// returns a ResultAsync with an AgentError. Timeouts follow runtime-rs: request_timeout_ms
// (default 30 s) for most calls, none for the calls that block on the workload.
import {
  create,
  fromBinary,
  toBinary,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import {
  CopyFileRequestSchema,
  CreateContainerRequestSchema,
  CreateSandboxRequestSchema,
  DestroySandboxRequestSchema,
  ExecProcessRequestSchema,
  GetOOMEventRequestSchema,
  GuestDetailsRequestSchema,
  GuestDetailsResponseSchema,
  OnlineCPUMemRequestSchema,
  OOMEventSchema,
  ReadStreamRequestSchema,
  ReadStreamResponseSchema,
  RemoveContainerRequestSchema,
  SignalProcessRequestSchema,
  StartContainerRequestSchema,
  UpdateContainerRequestSchema,
  WaitProcessRequestSchema,
  WaitProcessResponseSchema,
  WriteStreamRequestSchema,
  WriteStreamResponseSchema,
} from '../gen/agent_pb.js';
import {
  CheckRequestSchema,
  HealthCheckResponseSchema,
  VersionCheckResponseSchema,
} from '../gen/health_pb.js';
import { callAsync, type NativeAddon } from '../native.js';
import { fromNative, type AgentError } from './errors.js';

export type AgentConnection = Awaited<ReturnType<NativeAddon['dialAgent']>>;

export const AGENT_SERVICE = 'grpc.AgentService';
export const HEALTH_SERVICE = 'grpc.Health';
/** runtime-rs `request_timeout_ms` default. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** runtime-rs `health_check_request_timeout_ms` default. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 90_000;
/** Kata's agent vsock port. */
export const AGENT_VSOCK_PORT = 1024;

/** How to reach the agent. */
export type AgentTarget =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'hybrid-vsock'; readonly path: string; readonly port?: number }
  | { readonly kind: 'vsock'; readonly cid: number; readonly port?: number };

export interface AgentClientOptions {
  /** Keep dialing for this long (the guest may still be booting). Default 10 s. */
  readonly dialTimeoutMs?: number;
  /** Timeout of ordinary requests. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Timeout of health Check/Version. Default 90 s. */
  readonly healthTimeoutMs?: number;
}

type Init<D extends DescMessage> = MessageInitShape<D>;

/**
 * CopyFileRequest bytes, identical to `toBinary(CopyFileRequestSchema, …)`: the schema encodes
 * every field but `data`, and `data` (field 8, the last in field order, which is where
 * protobuf-es puts it too) is appended as one length-delimited field. protobuf-es copies bytes
 * fields through its chunked writer at a few ms per MiB, which dominated chunked copies.
 */
export function encodeCopyFileRequest(req: Init<typeof CopyFileRequestSchema>): Buffer {
  const data = req.data ?? new Uint8Array(0);
  const head = toBinary(
    CopyFileRequestSchema,
    create(CopyFileRequestSchema, { ...req, data: new Uint8Array(0) }),
  );
  if (data.length === 0) return Buffer.from(head);
  const len: number[] = [];
  for (let n = data.length; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      len.push(n);
      break;
    }
    len.push((n % 128) | 0x80);
  }
  return Buffer.concat([head, Uint8Array.of(0x42, ...len), data]);
}

function decode<O extends DescMessage>(
  output: O,
  method: string,
  bytes: Uint8Array,
): Result<MessageShape<O>, AgentError> {
  try {
    return ok(fromBinary(output, bytes));
  } catch (e) {
    return err({ kind: 'decode', method, message: String(e) });
  }
}

/** Native dial options for an agent target (the vsock port defaults to Kata's 1024). */
export function dialOptions(target: AgentTarget, dialTimeoutMs = 10_000) {
  return {
    kind: target.kind,
    path: 'path' in target ? target.path : undefined,
    cid: 'cid' in target ? target.cid : undefined,
    port: target.kind === 'unix' ? undefined : (target.port ?? AGENT_VSOCK_PORT),
    timeoutMs: dialTimeoutMs,
  };
}

/** Dials the agent and returns a connected client. */
export function connectAgent(
  target: AgentTarget,
  options: AgentClientOptions = {},
): ResultAsync<AgentClient, AgentError> {
  const dial = dialOptions(target, options.dialTimeoutMs);
  return callAsync((n) => n.dialAgent(dial))
    .mapErr((e) => fromNative(e, 'dial'))
    .map((conn) => new AgentClient(conn, options));
}

/** A connected agent client. Call `close()` when done. */
export class AgentClient {
  private readonly requestTimeoutMs: number;
  private readonly healthTimeoutMs: number;

  constructor(
    private readonly conn: AgentConnection,
    options: AgentClientOptions = {},
  ) {
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.healthTimeoutMs = options.healthTimeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  }

  /** The dialed address. */
  get address(): string {
    return this.conn.address;
  }

  /** The native connection, for native code that shares it (live sync over virtio-serial). */
  get connection(): AgentConnection {
    return this.conn;
  }

  /** True once closed or the connection was lost. */
  get closed(): boolean {
    return this.conn.closed;
  }

  /** Closes the connection; pending calls fail with `closed`. Idempotent. */
  close(): void {
    this.conn.close();
  }

  /**
   * One unary call with explicit schemas: the building block of the typed methods, public for
   * methods this class does not wrap. `timeoutMs` 0 means no timeout.
   */
  call<I extends DescMessage, O extends DescMessage>(
    service: string,
    method: string,
    input: I,
    output: O,
    request: Init<I>,
    timeoutMs: number,
  ): ResultAsync<MessageShape<O>, AgentError> {
    const payload = Buffer.from(toBinary(input, create(input, request)));
    // One continuation for error mapping and decoding: each extra ResultAsync step costs a few
    // promise turns, which showed up in the health-check round trip.
    const reply = callAsync(() => this.conn.call(service, method, payload, timeoutMs));
    return new ResultAsync(
      (async () =>
        (await reply)
          .mapErr((e) => fromNative(e, method))
          .andThen((bytes) => decode(output, method, bytes)))(),
    );
  }

  private agent<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    request: Init<I>,
    timeoutMs = this.requestTimeoutMs,
  ): ResultAsync<MessageShape<O>, AgentError> {
    return this.call(AGENT_SERVICE, method, input, output, request, timeoutMs);
  }

  private empty<I extends DescMessage>(
    method: string,
    input: I,
    request: Init<I>,
  ): ResultAsync<void, AgentError> {
    return this.agent(method, input, EmptySchema, request).map(() => undefined);
  }

  createSandbox(req: Init<typeof CreateSandboxRequestSchema>) {
    return this.empty('CreateSandbox', CreateSandboxRequestSchema, req);
  }

  destroySandbox() {
    return this.empty('DestroySandbox', DestroySandboxRequestSchema, {});
  }

  createContainer(req: Init<typeof CreateContainerRequestSchema>) {
    return this.empty('CreateContainer', CreateContainerRequestSchema, req);
  }

  startContainer(containerId: string) {
    return this.empty('StartContainer', StartContainerRequestSchema, { containerId });
  }

  /** `timeout` is seconds the agent waits for the processes to die (0 = forever). */
  removeContainer(containerId: string, timeout = 0) {
    return this.empty('RemoveContainer', RemoveContainerRequestSchema, { containerId, timeout });
  }

  execProcess(req: Init<typeof ExecProcessRequestSchema>) {
    return this.empty('ExecProcess', ExecProcessRequestSchema, req);
  }

  /** Empty `execId` signals every process of the container. */
  signalProcess(containerId: string, execId: string, signal: number) {
    return this.empty('SignalProcess', SignalProcessRequestSchema, { containerId, execId, signal });
  }

  /** Waits (no timeout) until the process exits; resolves with its exit status. */
  waitProcess(containerId: string, execId = ''): ResultAsync<number, AgentError> {
    return this.agent(
      'WaitProcess',
      WaitProcessRequestSchema,
      WaitProcessResponseSchema,
      { containerId, execId },
      0,
    ).map((r) => r.status);
  }

  updateContainer(req: Init<typeof UpdateContainerRequestSchema>) {
    return this.empty('UpdateContainer', UpdateContainerRequestSchema, req);
  }

  /** Writes to the process's stdin (no timeout); resolves with the bytes taken. */
  writeStdin(
    containerId: string,
    execId: string,
    data: Uint8Array,
  ): ResultAsync<number, AgentError> {
    return this.agent(
      'WriteStdin',
      WriteStreamRequestSchema,
      WriteStreamResponseSchema,
      { containerId, execId, data },
      0,
    ).map((r) => r.len);
  }

  /** Reads up to `len` bytes of stdout (no timeout); empty data means end of stream. */
  readStdout(
    containerId: string,
    execId: string,
    len: number,
  ): ResultAsync<Uint8Array, AgentError> {
    return this.readStream('ReadStdout', containerId, execId, len);
  }

  /** Reads up to `len` bytes of stderr (no timeout); empty data means end of stream. */
  readStderr(
    containerId: string,
    execId: string,
    len: number,
  ): ResultAsync<Uint8Array, AgentError> {
    return this.readStream('ReadStderr', containerId, execId, len);
  }

  private readStream(method: string, containerId: string, execId: string, len: number) {
    return this.agent(
      method,
      ReadStreamRequestSchema,
      ReadStreamResponseSchema,
      { containerId, execId, len },
      0,
    ).map((r) => r.data);
  }

  onlineCpuMem(req: Init<typeof OnlineCPUMemRequestSchema>) {
    return this.empty('OnlineCPUMem', OnlineCPUMemRequestSchema, req);
  }

  /** One CopyFile request (a whole small file, a directory, a symlink, or one chunk). */
  copyFile(req: Init<typeof CopyFileRequestSchema>): ResultAsync<void, AgentError> {
    const payload = encodeCopyFileRequest(req);
    const reply = callAsync(() =>
      this.conn.call(AGENT_SERVICE, 'CopyFile', payload, this.requestTimeoutMs),
    );
    return new ResultAsync(
      (async () => (await reply).mapErr((e) => fromNative(e, 'CopyFile')).map(() => undefined))(),
    );
  }

  getGuestDetails(req: Init<typeof GuestDetailsRequestSchema> = { memBlockSize: true }) {
    return this.agent(
      'GetGuestDetails',
      GuestDetailsRequestSchema,
      GuestDetailsResponseSchema,
      req,
    );
  }

  /** Waits (no timeout) for the next OOM event in the guest. */
  getOomEvent(): ResultAsync<string, AgentError> {
    return this.agent('GetOOMEvent', GetOOMEventRequestSchema, OOMEventSchema, {}, 0).map(
      (r) => r.containerId,
    );
  }

  /** Health Check; resolves with the serving status (1 = SERVING). */
  check(service = ''): ResultAsync<number, AgentError> {
    return this.call(
      HEALTH_SERVICE,
      'Check',
      CheckRequestSchema,
      HealthCheckResponseSchema,
      { service },
      this.healthTimeoutMs,
    ).map((r) => r.status);
  }

  version() {
    return this.call(
      HEALTH_SERVICE,
      'Version',
      CheckRequestSchema,
      VersionCheckResponseSchema,
      {},
      this.healthTimeoutMs,
    );
  }
}
