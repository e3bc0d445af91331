// Live sync of one copy volume (shared_fs = none, behaviour.md feature 4), typed over the native
// `VolumeSync`: the watch crate copies the host tree into the guest with CopyFile on its own agent
// connection, watches it with inotify and re-sends what changed after a debounce. TypeScript sees
// one summary per sync, never per-file events or file bytes.
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import type { VolumeSync, VolumeSyncEvent } from '../../index.js';
import { dialOptions, type AgentConnection, type AgentTarget } from '../agent/client.js';
import { call, callAsync, type NativeError } from '../native.js';
import type { GuestPath } from '../paths.js';

/** Default quiet time after the last host change before syncing (runtime-rs `DEBOUNCE_TIME`). */
export const DEFAULT_DEBOUNCE_MS = 500;

/** One completed sync. */
export interface SyncSummary {
  readonly kind: 'synced';
  readonly reason: 'initial' | 'events' | 'overflow' | 'destination';
  /** Every entry was sent (initial copy, new destination, inotify overflow). */
  readonly full: boolean;
  /** Entries sent over all destinations (only changed ones unless `full`). */
  readonly entries: number;
  readonly bytes: number;
  readonly destinations: number;
  /** Entries that cannot be copied (sockets, fifos, devices, non-UTF-8 names). */
  readonly skipped: number;
  readonly failed: number;
  readonly durationUs: number;
  /** Directories under inotify watch (0 without watching). */
  readonly watchedDirs: number;
  /** Time spent setting up the recursive watch (initial sync only). */
  readonly watchSetupUs: number;
  /** The first failure, when `failed > 0`. */
  readonly message?: string;
}

export type SyncEvent = SyncSummary | { readonly kind: 'error'; readonly message: string };

export interface LiveSyncOptions {
  /** Canonical host source: a directory, or a file when `watch` is false. */
  readonly source: string;
  readonly destinations: readonly GuestPath[];
  readonly agent: AgentTarget;
  /** Send on this connection instead of dialing `agent` (virtio-serial allows one); left open on close. */
  readonly connection?: AgentConnection;
  /** Default 500. */
  readonly debounceMs?: number;
  readonly dialTimeoutMs?: number;
  readonly callTimeoutMs?: number;
  /** False: copy once and stop. Default true. */
  readonly watch?: boolean;
}

const REASONS = new Set(['initial', 'events', 'overflow', 'destination']);

function toEvent(e: VolumeSyncEvent): SyncEvent {
  if (e.kind !== 'synced') return { kind: 'error', message: e.message ?? 'unknown watcher error' };
  const reason = REASONS.has(e.reason ?? '') ? (e.reason as SyncSummary['reason']) : 'events';
  return {
    kind: 'synced',
    reason,
    full: e.full ?? false,
    entries: e.entries ?? 0,
    bytes: e.bytes ?? 0,
    destinations: e.destinations ?? 0,
    skipped: e.skipped ?? 0,
    failed: e.failed ?? 0,
    durationUs: e.durationUs ?? 0,
    watchedDirs: e.watchedDirs ?? 0,
    watchSetupUs: e.watchSetupUs ?? 0,
    ...(e.message === undefined || e.message === null ? {} : { message: e.message }),
  };
}

function toSummary(e: VolumeSyncEvent): SyncSummary {
  const s = toEvent(e);
  return s.kind === 'synced'
    ? s
    : {
        kind: 'synced',
        reason: 'events',
        full: false,
        entries: 0,
        bytes: 0,
        destinations: 0,
        skipped: 0,
        failed: 1,
        durationUs: 0,
        watchedDirs: 0,
        watchSetupUs: 0,
        message: s.message,
      };
}

/** A running live sync. Close it when the volume is released. */
export class LiveSync {
  readonly #native: VolumeSync;
  /** The initial full copy. */
  readonly initial: SyncSummary;

  constructor(native: VolumeSync) {
    this.#native = native;
    this.initial = toSummary(native.initial);
  }

  /** Adds a destination and copies the whole tree to it. */
  addDestination(dest: GuestPath): ResultAsync<SyncSummary, NativeError> {
    return callAsync(() => this.#native.addDestination(dest)).map(toSummary);
  }

  /** Stops syncing to `dest`; its copy stays in the guest (the agent protocol has no delete). */
  removeDestination(dest: GuestPath): Result<void, NativeError> {
    return call(() => this.#native.removeDestination(dest));
  }

  /** Stops watching; idempotent. */
  close(): void {
    call(() => this.#native.close());
  }

  get closed(): boolean {
    return this.#native.closed;
  }

  /** Kernel thread id of the watcher thread (`/proc/<pid>/task/<tid>/stat`). */
  get threadId(): number {
    return this.#native.threadId;
  }
}

/** Copies `source` to every destination and, unless `watch: false`, keeps them in sync. */
export function startLiveSync(
  options: LiveSyncOptions,
  onEvent: (e: SyncEvent) => void = () => {},
): ResultAsync<LiveSync, NativeError> {
  const agent = dialOptions(options.agent, options.dialTimeoutMs);
  const start = (n: { startVolumeSync: AgentConnection['startVolumeSync'] }) =>
    n.startVolumeSync(
      {
        source: options.source,
        destinations: [...options.destinations],
        agent,
        debounceMs: options.debounceMs ?? DEFAULT_DEBOUNCE_MS,
        callTimeoutMs: options.callTimeoutMs,
        watch: options.watch,
      },
      (e) => onEvent(toEvent(e)),
    );
  return callAsync((n) => (options.connection ? start(options.connection) : start(n))).map(
    (native) => new LiveSync(native),
  );
}

/** Ok when `e` is a summary without failures. */
export function syncSucceeded(e: SyncEvent): Result<SyncSummary, string> {
  if (e.kind === 'error') return err(e.message);
  return e.failed > 0 ? err(e.message ?? `${e.failed} entries failed`) : ok(e);
}
