// The VolumeManager's copied directories kept live: one LiveSync per canonical host source,
// fanning out to every (container, guest path) destination the manager holds for it. The first
// acquire starts it (copying to its destination), later ones add a destination (copying the
// whole tree there), a release drops that container's destination, the last release stops it,
// and sandbox teardown stops all. Unlike runtime-rs (reference §4), whose overwritten entry
// makes releasing the first container stop the last one's watcher.
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import type { AgentConnection, AgentTarget } from '../agent/client.js';
import type { NativeError } from '../native.js';
import type { GuestPath } from '../paths.js';
import type { Acquired, VolumeManager } from '../plan/volume-manager.js';
import type { RandomHex } from '../plan/volumes-paths.js';
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
  /** Every sync summary or watcher error, with the canonical source it is about. */
  readonly onEvent?: (source: string, event: SyncEvent) => void;
}

export class VolumeSyncs {
  readonly #manager: VolumeManager;
  readonly #options: VolumeSyncsOptions;
  /** Canonical source → its starting or running sync (undefined: failed to start). */
  readonly #syncs = new Map<string, Promise<LiveSync | undefined>>();

  constructor(manager: VolumeManager, options: VolumeSyncsOptions) {
    this.#manager = manager;
    this.#options = options;
  }

  /**
   * Adds a reference of `containerId` to `source` and copies it to the new guest path: through
   * the source's running sync when there is one, else by starting it (or, for a directory that
   * is not watched, by a one-off copy). A failed copy gives the reference back.
   */
  acquire(source: string, containerId: string, mountDestination: string, random: RandomHex, watched = true): ResultAsync<Acquired, VolumeSyncError> {
    const acquired = this.#manager.acquire(source, containerId, mountDestination, random, watched);
    if (acquired.isErr()) return errAsync({ kind: 'volume', source, message: acquired.error });
    const { guestPath, first } = acquired.value;
    const entry = this.#manager.get(source);
    const key = entry?.source ?? source;
    const copied = entry?.watched === false ? this.#copyOnce(key, guestPath) : first ? this.#start(key, guestPath) : this.#add(key, guestPath);
    return copied.map(() => acquired.value).mapErr((e) => {
      this.release(source, containerId);
      return e;
    });
  }

  /**
   * Drops one reference of `containerId`. True when it was the last: the source's sync is stopped.
   * Otherwise only that container's destination stops receiving updates.
   */
  release(source: string, containerId: string): boolean {
    const entry = this.#manager.get(source);
    const dest = entry?.destinations.find((d) => d.containerId === containerId);
    const last = this.#manager.release(source, containerId);
    const key = entry?.source ?? source;
    const sync = this.#syncs.get(key);
    if (sync === undefined || dest === undefined) return last;
    if (last) {
      this.#syncs.delete(key);
      void sync.then((s) => s?.close());
    } else {
      void sync.then((s) => s?.removeDestination(dest.guestPath));
    }
    return last;
  }

  /** Stops every sync (sandbox teardown); resolves once all are closed. */
  async teardown(): Promise<void> {
    const all = [...this.#syncs.values()];
    this.#syncs.clear();
    for (const s of await Promise.all(all)) s?.close();
  }

  /** Canonical sources with a running or starting sync. */
  sources(): string[] {
    return [...this.#syncs.keys()];
  }

  #native<T>(source: string, r: ResultAsync<T, NativeError>): ResultAsync<T, VolumeSyncError> {
    return r.mapErr((e) => ({ ...e, source }));
  }

  #start(source: string, dest: GuestPath): ResultAsync<void, VolumeSyncError> {
    const onEvent = this.#options.onEvent;
    const started = startLiveSync(
      { source, destinations: [dest], agent: this.#options.agent, connection: this.#options.connection, debounceMs: this.#options.debounceMs, dialTimeoutMs: this.#options.dialTimeoutMs },
      (e) => onEvent?.(source, e),
    );
    const handle = started.match(
      (s) => s,
      () => undefined,
    );
    this.#syncs.set(source, handle);
    return this.#native(source, started).andThen((s) => {
      // Released (or torn down) while the first copy ran: stop at once.
      if (this.#syncs.get(source) !== handle) s.close();
      return okAsync(undefined);
    });
  }

  #add(source: string, dest: GuestPath): ResultAsync<void, VolumeSyncError> {
    const sync = this.#syncs.get(source);
    if (sync === undefined) return this.#start(source, dest);
    return ResultAsync.fromSafePromise(sync).andThen((s) =>
      s === undefined ? errAsync<void, VolumeSyncError>({ kind: 'volume', source, message: `the sync of ${source} failed to start` }) : this.#native(source, s.addDestination(dest)).map(() => undefined),
    );
  }

  #copyOnce(source: string, dest: GuestPath): ResultAsync<void, VolumeSyncError> {
    return this.#native(source, startLiveSync({ source, destinations: [dest], agent: this.#options.agent, connection: this.#options.connection, dialTimeoutMs: this.#options.dialTimeoutMs, watch: false })).map(
      (s) => s.close(),
    );
  }
}
