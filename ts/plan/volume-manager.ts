// VolumeManager: the sandbox's copied directories (shared_fs = none), one entry per canonical
// host source with a true refcount and every (container, guest path) destination, so one watcher
// per source can fan out to all of them and is stopped only when the last reference goes.
//
// Deliberately unlike runtime-rs `share_fs_volume.rs::VolumeManager` (reference §4), which
// overwrites the entry on every `get_or_create_volume`: there the refcount is always 1, the
// earlier container's watcher handle is dropped, and releasing the first container stops the
// last container's watcher. Vectors §2.8 "intended" column.
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { GuestPath } from '../paths.js';
import { copyGuestPath, type RandomHex } from './volumes-paths.js';

export interface CopyDestination {
  readonly containerId: string;
  readonly guestPath: GuestPath;
}

/** One copied source: its destinations (refcount = their number) and whether it is watched. */
export interface CopiedVolume {
  readonly source: string;
  readonly refCount: number;
  readonly destinations: readonly CopyDestination[];
  readonly watched: boolean;
}

export interface Acquired {
  readonly guestPath: GuestPath;
  /** The canonical source the destination was added to (the entry's key). */
  readonly key: string;
  /** True for the first reference: start the source's watcher (when watched). */
  readonly first: boolean;
}

/** Lexical canonical form; the planner passes one backed by host realpath facts. */
const lexical = (p: string): string => path.posix.resolve('/', p);

export class VolumeManager {
  readonly #volumes = new Map<string, { watched: boolean; destinations: CopyDestination[] }>();
  readonly #canonical: (p: string) => string;

  constructor(canonicalize: (p: string) => string = lexical) {
    this.#canonical = canonicalize;
  }

  /**
   * Adds a destination for `containerId` mounting `source` at `mountDestination`; every call gets
   * its own guest path `<cid>-<16 hex>-<basename(dest)>` and adds one reference.
   */
  acquire(
    source: string,
    containerId: string,
    mountDestination: string,
    random: RandomHex,
    watched = true,
  ): Result<Acquired, string> {
    const guestPath = copyGuestPath(containerId, mountDestination, random);
    if (guestPath.isErr()) return err(guestPath.error);
    const key = this.#canonical(source);
    const entry = this.#volumes.get(key);
    if (entry === undefined) {
      this.#volumes.set(key, {
        watched,
        destinations: [{ containerId, guestPath: guestPath.value }],
      });
      return ok({ guestPath: guestPath.value, key, first: true });
    }
    entry.destinations.push({ containerId, guestPath: guestPath.value });
    return ok({ guestPath: guestPath.value, key, first: false });
  }

  /**
   * Drops one reference of `containerId` to `source` (canonicalized first). True when it was the
   * last reference: stop the watcher. Unknown source or container: false, nothing changes.
   */
  release(source: string, containerId: string): boolean {
    const key = this.#canonical(source);
    const entry = this.#volumes.get(key);
    if (entry === undefined) return false;
    const at = entry.destinations.findIndex((d) => d.containerId === containerId);
    if (at < 0) return false;
    entry.destinations.splice(at, 1);
    if (entry.destinations.length > 0) return false;
    this.#volumes.delete(key);
    return true;
  }

  /** The entry for `source` (canonicalized), or undefined. */
  get(source: string): CopiedVolume | undefined {
    const key = this.#canonical(source);
    const entry = this.#volumes.get(key);
    return entry === undefined
      ? undefined
      : {
          source: key,
          refCount: entry.destinations.length,
          destinations: [...entry.destinations],
          watched: entry.watched,
        };
  }

  /** Every entry, in insertion order. */
  volumes(): CopiedVolume[] {
    return [...this.#volumes.keys()].map((k) => this.get(k)!);
  }
}
