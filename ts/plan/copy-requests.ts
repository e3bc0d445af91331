// The CopyFile requests that copy one host file or directory tree into the guest, as pure data
// from a listing of the tree (vectors §2.6 HEAD column; behaviour.md feature 4): top directory
// dir_mode S_IFDIR|0o750, st_mode for everything else, symlinks sent as symlinks (never followed),
// parents before children, files in ≤ 1 MiB chunks with `offset`, every path checked to stay in
// the guest share dir.
import { err, ok, type Result } from 'neverthrow';
import { isWithin, joinGuest, type GuestPath } from '../paths.js';
import { GUEST_SHARE_DIR } from './volumes-paths.js';

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
/** dir_mode of the top directory of a copied tree (runtime-rs `DIR_MODE_PERMS`). */
export const TOP_DIR_MODE = S_IFDIR | 0o750;
/** Largest data payload of one CopyFile request (runtime-go `grpcMaxDataSize`). */
export const MAX_CHUNK_BYTES = 1024 * 1024;

/** One entry of a host tree as lstat sees it (symlinks not followed). */
export interface TreeEntry {
  /** Path relative to the tree root, `/`-separated, no `.`/`..`; "" for the root itself. */
  readonly relPath: string;
  readonly kind: 'file' | 'dir' | 'symlink' | 'other';
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Regular files: byte length. */
  readonly size: number;
  /** Symlinks: the link text. */
  readonly linkTarget?: string;
}

/** A CopyFileRequest to send, with the data to read from the host (never the bytes themselves). */
export interface CopyRequest {
  readonly path: GuestPath;
  readonly fileSize: number;
  readonly fileMode: number;
  readonly dirMode: number;
  readonly uid: number;
  readonly gid: number;
  readonly offset: number;
  /** `file`: bytes [offset, offset+length) of the host file; `link`: the link text; `none`: empty. */
  readonly data: { readonly from: 'file'; readonly hostRelPath: string; readonly length: number } | { readonly from: 'link'; readonly text: string } | { readonly from: 'none' };
}

export interface CopyRequestPlan {
  readonly requests: readonly CopyRequest[];
  /** Entries that are neither file, directory nor symlink (sockets, fifos, devices): not copied. */
  readonly skipped: readonly string[];
}

function fileRequests(path: GuestPath, e: TreeEntry, dirMode: number): CopyRequest[] {
  const base = { path, fileSize: e.size, fileMode: e.mode, dirMode, uid: e.uid, gid: e.gid };
  if (e.size === 0) return [{ ...base, offset: 0, data: { from: 'file', hostRelPath: e.relPath, length: 0 } }];
  const out: CopyRequest[] = [];
  for (let offset = 0; offset < e.size; offset += MAX_CHUNK_BYTES) {
    out.push({ ...base, offset, data: { from: 'file', hostRelPath: e.relPath, length: Math.min(MAX_CHUNK_BYTES, e.size - offset) } });
  }
  return out;
}

/** Requests for a single-file mount copied to `dest`. */
export function fileCopyRequests(dest: GuestPath, file: TreeEntry): Result<CopyRequest[], string> {
  if (!isWithin(GUEST_SHARE_DIR, dest) || dest === GUEST_SHARE_DIR) return err(`${dest} is outside ${GUEST_SHARE_DIR}`);
  if (file.kind !== 'file') return err(`${dest}: expected a regular file, got ${file.kind}`);
  return ok(fileRequests(dest, { ...file, relPath: '' }, 0));
}

const depth = (rel: string) => (rel === '' ? 0 : rel.split('/').length);

/**
 * Requests for a directory tree copied to `dest`. `entries` holds the root (relPath "") and every
 * entry below it; order does not matter (parents are sent first, then by name).
 */
export function treeCopyRequests(dest: GuestPath, entries: readonly TreeEntry[]): Result<CopyRequestPlan, string> {
  if (!isWithin(GUEST_SHARE_DIR, dest) || dest === GUEST_SHARE_DIR) return err(`${dest} is outside ${GUEST_SHARE_DIR}`);
  const root = entries.find((e) => e.relPath === '');
  if (root === undefined || root.kind !== 'dir') return err(`${dest}: the listing has no root directory`);
  const sorted = entries
    .filter((e) => e.relPath !== '')
    .slice()
    .sort((a, b) => depth(a.relPath) - depth(b.relPath) || (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  const requests: CopyRequest[] = [
    { path: dest, fileSize: 0, fileMode: root.mode, dirMode: TOP_DIR_MODE, uid: root.uid, gid: root.gid, offset: 0, data: { from: 'none' } },
  ];
  const skipped: string[] = [];
  for (const e of sorted) {
    // Each component is re-checked: a name holding `/`, `..` or NUL cannot leave `dest`.
    const path = joinGuest(dest, ...e.relPath.split('/'));
    if (path.isErr()) return err(`${e.relPath}: ${path.error.message}`);
    switch (e.kind) {
      case 'dir':
        requests.push({ path: path.value, fileSize: 0, fileMode: e.mode, dirMode: e.mode, uid: e.uid, gid: e.gid, offset: 0, data: { from: 'none' } });
        break;
      case 'file':
        requests.push(...fileRequests(path.value, e, 0));
        break;
      case 'symlink': {
        const text = e.linkTarget ?? '';
        const size = Buffer.byteLength(text);
        requests.push({ path: path.value, fileSize: size, fileMode: S_IFLNK, dirMode: 0, uid: e.uid, gid: e.gid, offset: 0, data: { from: 'link', text } });
        break;
      }
      default:
        skipped.push(e.relPath);
    }
  }
  return ok({ requests, skipped });
}
