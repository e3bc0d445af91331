// Chunked CopyFile: files larger than one request are sent as ≤ 1 MiB pieces with `offset`
// (behaviour.md feature 4; Go's grpcMaxDataSize), never one oversized ttrpc message. The agent
// writes each piece into a temp file and renames it once `fileSize` bytes are present.
import { okAsync, type ResultAsync } from 'neverthrow';
import type { AgentClient } from './client.js';
import type { AgentError } from './errors.js';

/** Largest `data` per CopyFile request. */
export const COPY_CHUNK_BYTES = 1 << 20;

export interface CopyFileTarget {
  /** Guest path under /run/kata-containers/shared/containers/. */
  readonly path: string;
  /** st_mode (type bits + permissions). */
  readonly fileMode: number;
  readonly dirMode?: number;
  readonly uid?: number;
  readonly gid?: number;
}

/** Sends a regular file's bytes in order, one chunk at a time (each waits for the previous). */
export function copyFileChunked(
  client: AgentClient,
  target: CopyFileTarget,
  data: Uint8Array,
  chunkBytes = COPY_CHUNK_BYTES,
): ResultAsync<void, AgentError> {
  const fileSize = BigInt(data.length);
  const base = { path: target.path, fileSize, fileMode: target.fileMode, dirMode: target.dirMode ?? 0, uid: target.uid ?? 0, gid: target.gid ?? 0 };
  if (data.length === 0) return client.copyFile({ ...base, offset: 0n });
  let chain: ResultAsync<void, AgentError> = okAsync(undefined);
  for (let at = 0; at < data.length; at += chunkBytes) {
    const piece = data.subarray(at, Math.min(at + chunkBytes, data.length));
    const offset = BigInt(at);
    chain = chain.andThen(() => client.copyFile({ ...base, offset, data: piece }));
  }
  return chain;
}
