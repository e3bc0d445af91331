// Writing a file into a bundle, whose names whoever made the bundle may have planted: the data
// goes to a temp file created exclusively (O_CREAT|O_EXCL|O_NOFOLLOW, an unguessable name, in
// the same directory) and is renamed over the target. rename(2) replaces a symlink or FIFO at
// the target instead of following or opening it; writeFileSync used to write through a planted
// `rootfs-mounts.json -> /etc/...` link into the host file.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';

export interface ReplaceFileError {
  readonly path: string;
  /** What failed, for `kata-ts: <path>: <what>`. */
  readonly what: string;
}

const CREATE_FLAGS =
  constants.O_WRONLY |
  constants.O_CREAT |
  constants.O_EXCL |
  constants.O_NOFOLLOW |
  constants.O_NOCTTY; // libuv adds O_CLOEXEC

function codeOf(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? 'EIO';
}

/** Replaces `file` with `data`, mode exactly `mode` whatever the umask. */
export function replaceFile(
  file: string,
  data: string,
  mode: number,
): Result<void, ReplaceFileError> {
  const temp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${randomBytes(12).toString('hex')}.tmp`,
  );
  let fd: number;
  try {
    fd = openSync(temp, CREATE_FLAGS, mode & 0o777);
  } catch (e) {
    return err({ path: file, what: `cannot create a temp file: ${codeOf(e)}` });
  }
  try {
    fchmodSync(fd, mode & 0o777);
    const bytes = Buffer.from(data, 'utf8');
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(temp, file);
    return ok(undefined);
  } catch (e) {
    if (fd !== -1) closeSync(fd);
    rmSync(temp, { force: true });
    return err({ path: file, what: `cannot write: ${codeOf(e)}` });
  }
}
