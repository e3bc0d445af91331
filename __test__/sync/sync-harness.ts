// Shared by the sync tests: temp host trees removed in teardown, a recursive snapshot of a tree
// (kind, permissions, owner, content or link text) to compare host and guest, live syncs closed
// in teardown, and a generous wait for conditions (the machine may be loaded).
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { GuestPath } from '../../ts/paths.js';
import { guestPath } from '../../ts/paths.js';
import {
  startLiveSync,
  type LiveSync,
  type LiveSyncOptions,
  type SyncEvent,
} from '../../ts/sync/live-sync.js';
import type { RunningAgent } from '../agent/agent-harness.js';

export const GUEST = '/run/kata-containers/shared/containers';

/** A temp directory removed when the test ends. */
export function tempDir(t: ExecutionContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `kata-ts-sync-${name}-`));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function guest(name: string): GuestPath {
  return guestPath(`${GUEST}/${name}`)._unsafeUnwrap();
}

/** Where the agent wrote a guest path. */
export function onAgent(agent: RunningAgent, dest: GuestPath): string {
  return join(agent.root, dest);
}

export interface Node {
  readonly kind: 'file' | 'dir' | 'symlink' | 'other';
  readonly perms: number;
  readonly owner: string;
  /** sha256 of a file, the text of a link. */
  readonly content: string;
}

/** Every entry below `root` (and root itself as ''), never following symlinks. */
export function snapshot(root: string): Map<string, Node> {
  const out = new Map<string, Node>();
  const visit = (rel: string) => {
    const p = rel === '' ? root : join(root, rel);
    const st = lstatSync(p);
    const kind = st.isSymbolicLink()
      ? 'symlink'
      : st.isDirectory()
        ? 'dir'
        : st.isFile()
          ? 'file'
          : 'other';
    const content =
      kind === 'file'
        ? createHash('sha256').update(readFileSync(p)).digest('hex')
        : kind === 'symlink'
          ? readlinkSync(p)
          : '';
    out.set(rel, {
      kind,
      perms: kind === 'symlink' ? 0 : st.mode & 0o7777,
      owner: `${st.uid}:${st.gid}`,
      content,
    });
    if (kind === 'dir')
      for (const name of readdirSync(p).sort()) visit(rel === '' ? name : `${rel}/${name}`);
  };
  visit('');
  return out;
}

/** Differences between the host tree and its guest copy; empty when equal. */
export function treeDiff(
  host: string,
  guestDir: string,
  options: { allowExtra?: boolean } = {},
): string[] {
  let g: Map<string, Node>;
  try {
    g = snapshot(guestDir);
  } catch (e) {
    return [`guest: ${String(e)}`];
  }
  const h = snapshot(host);
  const diff: string[] = [];
  for (const [rel, n] of h) {
    const m = g.get(rel);
    if (m === undefined) diff.push(`missing in guest: ${rel || '.'}`);
    else if (JSON.stringify(m) !== JSON.stringify(n))
      diff.push(`${rel || '.'}: host ${JSON.stringify(n)} guest ${JSON.stringify(m)}`);
  }
  if (!options.allowExtra)
    for (const rel of g.keys()) if (!h.has(rel)) diff.push(`extra in guest: ${rel}`);
  return diff;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` until it holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(cond: () => boolean, timeoutMs = 30_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (cond()) return true;
    } catch {
      // not there yet
    }
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

export interface Started {
  readonly sync: LiveSync;
  readonly events: SyncEvent[];
}

/** Starts a live sync whose events are collected; closed in teardown. */
export async function startSync(
  t: ExecutionContext,
  agent: RunningAgent,
  options: Omit<LiveSyncOptions, 'agent'>,
): Promise<Started> {
  const events: SyncEvent[] = [];
  const r = await startLiveSync({ dialTimeoutMs: 5_000, ...options, agent: agent.target }, (e) =>
    events.push(e),
  );
  const sync = r._unsafeUnwrap();
  t.teardown(() => sync.close());
  return { sync, events };
}

/** Syncs triggered by host changes so far. */
export const eventSyncs = (events: readonly SyncEvent[]) =>
  events.filter((e) => e.kind === 'synced' && (e.reason === 'events' || e.reason === 'overflow'));
