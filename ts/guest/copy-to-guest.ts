// Carries out a planned copy step (ts/plan/copy-volume.ts, shared_fs = none) once: lists the host
// file or tree with lstat (symlinks not followed), turns it into CopyFile requests with the pure
// ts/plan/copy-requests.ts and sends them in order over one agent connection. (Live sync over a
// second connection is ts/sync; a virtio-serial port carries only one.)
import { lstatSync, openSync, readSync, closeSync, readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import type { AgentClient } from '../agent/client.js';
import type { AgentError } from '../agent/errors.js';
import { fileCopyRequests, treeCopyRequests, type CopyRequest, type TreeEntry } from '../plan/copy-requests.js';
import type { CopyStep } from '../plan/copy-volume.js';

export type CopyToGuestError =
  | { readonly kind: 'copy-source'; readonly hostPath: string; readonly message: string }
  | (AgentError & { readonly guestPath: string });

/** What was sent for one step. */
export interface CopySummary {
  readonly requests: number;
  readonly bytes: number;
  /** Entries that are not files, directories or symlinks. */
  readonly skipped: readonly string[];
}

function entryOf(root: string, relPath: string): TreeEntry {
  const full = relPath === '' ? root : path.join(root, relPath);
  const st = lstatSync(full);
  const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { relPath, kind, mode: st.mode, uid: st.uid, gid: st.gid, size: kind === 'file' ? st.size : 0, ...(kind === 'symlink' ? { linkTarget: readlinkSync(full) } : {}) };
}

/** The root and every entry below it, as lstat sees them. */
export function listTree(root: string): TreeEntry[] {
  const out: TreeEntry[] = [entryOf(root, '')];
  const walk = (rel: string) => {
    for (const name of readdirSync(rel === '' ? root : path.join(root, rel)).sort()) {
      const e = entryOf(root, rel === '' ? name : `${rel}/${name}`);
      out.push(e);
      if (e.kind === 'dir') walk(e.relPath);
    }
  };
  if (out[0]!.kind === 'dir') walk('');
  return out;
}

function readRange(file: string, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = openSync(file, 'r');
  try {
    let done = 0;
    while (done < length) {
      const n = readSync(fd, buf, done, length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

function payload(step: CopyStep, r: CopyRequest): Uint8Array {
  switch (r.data.from) {
    case 'none':
      return new Uint8Array(0);
    case 'link':
      return Buffer.from(r.data.text);
    case 'file': {
      const file = r.data.hostRelPath === '' ? step.hostPath : path.join(step.hostPath, r.data.hostRelPath);
      return readRange(file, r.offset, r.data.length);
    }
  }
}

/** Copies one planned step into the guest (files in ≤ 1 MiB chunks, parents first). */
export function copyStepToGuest(agent: AgentClient, step: CopyStep): ResultAsync<CopySummary, CopyToGuestError> {
  const source = (message: string): CopyToGuestError => ({ kind: 'copy-source', hostPath: step.hostPath, message });
  let planned: { requests: readonly CopyRequest[]; skipped: readonly string[] };
  try {
    const entries = listTree(step.hostPath);
    const r = step.kind === 'file' ? fileCopyRequests(step.guestPath, entries[0]!).map((requests) => ({ requests, skipped: [] })) : treeCopyRequests(step.guestPath, entries);
    if (r.isErr()) return errAsync(source(r.error));
    planned = r.value;
  } catch (e) {
    return errAsync(source(e instanceof Error ? e.message : String(e)));
  }
  let bytes = 0;
  const chain = planned.requests.reduce<ResultAsync<void, CopyToGuestError>>((acc, r) => {
    return acc.andThen(() => {
      let data: Uint8Array;
      try {
        data = payload(step, r);
      } catch (e) {
        return errAsync(source(e instanceof Error ? e.message : String(e)));
      }
      bytes += r.data.from === 'file' ? data.length : 0;
      const req = { path: r.path, fileSize: BigInt(r.fileSize), fileMode: r.fileMode, dirMode: r.dirMode, uid: r.uid, gid: r.gid, offset: BigInt(r.offset), data };
      return agent.copyFile(req).mapErr((e): CopyToGuestError => ({ ...e, guestPath: r.path }));
    });
  }, okAsync(undefined));
  return chain.map(() => ({ requests: planned.requests.length, bytes, skipped: planned.skipped }));
}
