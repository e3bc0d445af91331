// A sandbox's planned copy steps carried out and kept live: one LiveSync per sync key (the
// canonical host source the plan chose), fanning out to every (container, guest path)
// destination the plan gave it. The first acquire of a key starts its sync (copying to its
// destination), later ones add a destination (copying the whole tree there), a release drops
// that container's destination, the last release stops it, and sandbox teardown stops all.
// Unwatched steps (files, directories copied without a watcher) are copied once. Unlike
// runtime-rs (reference §4), whose overwritten entry makes releasing the first container stop
// the last one's watcher. Nothing here decides a path: the plan's CopyStep carries them all.
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import type { AgentConnection, AgentTarget } from '../agent/client.js';
import type { NativeError } from '../native.js';
import type { GuestPath } from '../paths.js';
import type { CopyStep } from '../plan/copy-volume.js';
import { startLiveSync, type LiveSync, type SyncEvent } from './live-sync.js';

export type VolumeSyncError =
  | { readonly kind: 'volume'; readonly source: string; readonly message: string }
  | (NativeError & { readonly source: string });

export interface VolumeSyncsOptions {
  readonly agent: AgentTarget;
  /** Share this connection instead of dialing one per source (virtio-serial allows only one). */
  readonly connection?: AgentConnection;
  readonly debounceMs?: number;
  readonly dialTimeoutMs?: number;
  /** Every sync summary or watcher error, with the sync key (canonical source) it is about. */
  readonly onEvent?: (source: string, event: SyncEvent) => void;
}

/** What acquire did with a step. */
export interface Acquired {
  /** True when the step started its key's sync (or was copied once). */
  readonly first: boolean;
}

interface Destination {
  readonly containerId: string;
  readonly guestPath: GuestPath;
}

interface KeySync {
  /** The starting or running sync (undefined: it failed to start). */
  readonly sync: Promise<LiveSync | undefined>;
  readonly destinations: Destination[];
}

export class VolumeSyncs {
  readonly #options: VolumeSyncsOptions;
  readonly #syncs = new Map<string, KeySync>();

  constructor(options: VolumeSyncsOptions) {
    this.#options = options;
  }

  /**
   * Copies `step` for `containerId` to its planned guest path: through its key's running sync
   * when there is one, else by starting it (or once, for an unwatched step). A failed copy
   * drops the destination again.
   */
  acquire(containerId: string, step: CopyStep): ResultAsync<Acquired, VolumeSyncError> {
    if (!step.watched)
      return this.#copyOnce(step.source, step.guestPath).map(() => ({ first: true }));
    const dest = { containerId, guestPath: step.guestPath };
    const running = this.#syncs.get(step.syncKey);
    const copied = running === undefined ? this.#start(step, dest) : this.#add(step, running, dest);
    return copied
      .map(() => ({ first: running === undefined }))
      .mapErr((e) => {
        this.release(containerId, step);
        return e;
      });
  }

  /**
   * Drops the destination of `step` for `containerId`. True when it was the key's last: its sync
   * is stopped. Otherwise only that destination stops receiving updates. Unwatched steps hold
   * nothing: true.
   */
  release(containerId: string, step: CopyStep): boolean {
    if (!step.watched) return true;
    const entry = this.#syncs.get(step.syncKey);
    if (entry === undefined) return true;
    const at = entry.destinations.findIndex(
      (d) => d.containerId === containerId && d.guestPath === step.guestPath,
    );
    if (at < 0) return false;
    entry.destinations.splice(at, 1);
    if (entry.destinations.length === 0) {
      this.#syncs.delete(step.syncKey);
      void entry.sync.then((s) => s?.close());
      return true;
    }
    void entry.sync.then((s) => s?.removeDestination(step.guestPath));
    return false;
  }

  /** Stops every sync (sandbox teardown); resolves once all are closed. */
  async teardown(): Promise<void> {
    const all = [...this.#syncs.values()];
    this.#syncs.clear();
    for (const s of await Promise.all(all.map((e) => e.sync))) s?.close();
  }

  /** Sync keys with a running or starting sync. */
  sources(): string[] {
    return [...this.#syncs.keys()];
  }

  /** Destinations of `key` (in the order they were added). */
  destinations(key: string): readonly Destination[] {
    return [...(this.#syncs.get(key)?.destinations ?? [])];
  }

  #native<T>(source: string, r: ResultAsync<T, NativeError>): ResultAsync<T, VolumeSyncError> {
    return r.mapErr((e) => ({ ...e, source }));
  }

  #start(step: CopyStep, dest: Destination): ResultAsync<void, VolumeSyncError> {
    const o = this.#options;
    const key = step.syncKey;
    const started = startLiveSync(
      {
        source: step.source,
        destinations: [dest.guestPath],
        agent: o.agent,
        connection: o.connection,
        debounceMs: o.debounceMs,
        dialTimeoutMs: o.dialTimeoutMs,
      },
      (e) => o.onEvent?.(key, e),
    );
    const entry: KeySync = {
      sync: started.match(
        (s) => s,
        () => undefined,
      ),
      destinations: [dest],
    };
    this.#syncs.set(key, entry);
    return this.#native(step.source, started).andThen((s) => {
      // Released (or torn down) while the first copy ran: stop at once.
      if (this.#syncs.get(key) !== entry) s.close();
      return okAsync(undefined);
    });
  }

  #add(step: CopyStep, entry: KeySync, dest: Destination): ResultAsync<void, VolumeSyncError> {
    entry.destinations.push(dest);
    return ResultAsync.fromSafePromise(entry.sync).andThen((s) =>
      s === undefined
        ? errAsync<void, VolumeSyncError>({
            kind: 'volume',
            source: step.source,
            message: `the sync of ${step.source} failed to start`,
          })
        : this.#native(step.source, s.addDestination(dest.guestPath)).map(() => undefined),
    );
  }

  #copyOnce(source: string, dest: GuestPath): ResultAsync<void, VolumeSyncError> {
    const o = this.#options;
    const once = startLiveSync({
      source,
      destinations: [dest],
      agent: o.agent,
      connection: o.connection,
      dialTimeoutMs: o.dialTimeoutMs,
      watch: false,
    });
    return this.#native(source, once).map((s) => s.close());
  }
}
