// Task events to containerd: `containerd.services.events.ttrpc.v1.Events/Forward` on
// TTRPC_ADDRESS, one Envelope per event, in order, each call bounded by 5 s as containerd's own
// shims do (containerd/runtime/v2/shim/publisher.go). The Any's type URL is the bare message
// name (`containerd.events.TaskExit`): containerd's typeurl registry resolves that, not the
// `type.googleapis.com/` form protobuf-es would write.
import { create, toBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { AnySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import type { Logger } from 'pino';
import {
  EnvelopeSchema,
  ForwardRequestSchema,
} from '../gen/containerd/services/events/ttrpc/v1/events_pb.js';
import { callAsync, type NativeAddon } from '../native.js';

export const EVENTS_SERVICE = 'containerd.services.events.ttrpc.v1.Events';
const FORWARD_TIMEOUT_MS = 5_000;

type Connection = Awaited<ReturnType<NativeAddon['dialAgent']>>;

/** `unix:///x` or `/x` → `/x`. */
export function socketPathOf(address: string): string {
  return address.replace(/^unix:\/\//, '');
}

/** The encoded ForwardRequest of one event. */
export function forwardRequest<D extends DescMessage>(
  namespace: string,
  topic: string,
  schema: D,
  event: MessageInitShape<D>,
  at = new Date(),
): Uint8Array {
  const envelope = create(EnvelopeSchema, {
    timestamp: timestampFromDate(at),
    namespace,
    topic,
    event: create(AnySchema, {
      typeUrl: schema.typeName,
      value: toBinary(schema, create(schema, event)),
    }),
  });
  return toBinary(ForwardRequestSchema, create(ForwardRequestSchema, { envelope }));
}

/** Publishes events in order on one connection, re-dialled when lost. Failures are logged. */
export class EventPublisher {
  private conn: Connection | null = null;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly ttrpcAddress: string,
    private readonly namespace: string,
    private readonly log: Logger,
  ) {}

  /** Queues the event; resolves once it was forwarded (or failed and was logged). */
  publish<D extends DescMessage>(
    topic: string,
    schema: D,
    event: MessageInitShape<D>,
  ): Promise<void> {
    const bytes = forwardRequest(this.namespace, topic, schema, event);
    this.queue = this.queue.then(() => this.forward(topic, bytes));
    return this.queue;
  }

  private async forward(topic: string, bytes: Uint8Array): Promise<void> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const conn = await this.connection();
      if (conn === null) return;
      const sent = await callAsync(() =>
        conn.call(EVENTS_SERVICE, 'Forward', Buffer.from(bytes), FORWARD_TIMEOUT_MS),
      );
      if (sent.isOk()) return;
      this.log.warn({ topic, err: sent.error.message }, 'forwarding an event to containerd failed');
      if (sent.error.code !== 'TRANSPORT_LOST' && sent.error.code !== 'TRANSPORT_CLOSED') return;
      this.conn = null;
    }
  }

  private async connection(): Promise<Connection | null> {
    if (this.conn !== null && !this.conn.closed) return this.conn;
    const dialed = await callAsync((n) =>
      n.dialAgent({
        kind: 'unix',
        path: socketPathOf(this.ttrpcAddress),
        timeoutMs: FORWARD_TIMEOUT_MS,
      }),
    );
    if (dialed.isErr()) {
      this.log.warn(
        { address: this.ttrpcAddress, err: dialed.error.message },
        'cannot reach containerd for events',
      );
      return null;
    }
    this.conn = dialed.value;
    return this.conn;
  }

  /** Waits for queued events, then closes the connection. */
  async close(): Promise<void> {
    await this.queue;
    this.conn?.close();
    this.conn = null;
  }
}
