// The tail of a log in a directory another user may own (a rootless VMM user owns the run dir of
// its sandbox and can plant `qemu.log -> /etc/shadow` or a FIFO there): opened like readInputFile
// (O_NOFOLLOW, non-blocking, never our controlling terminal), fstat'ed as a regular file, and only
// its last bytes read at their offset. Anything else gives a short note instead of content.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';

const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY;

/** The last `bytes` of `file` as text, trimmed; `''` when missing, a note when unsafe to read. */
export function readLogTail(file: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    if (code === 'ENOENT') return '';
    return `log unavailable (${code === 'ELOOP' ? 'a symbolic link' : code})`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return 'log unavailable (not a regular file)';
    const length = Math.min(bytes, st.size);
    const buf = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, st.size - length + got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got).toString('utf8').trim();
  } catch (e) {
    return `log unavailable (${(e as NodeJS.ErrnoException).code ?? 'EIO'})`;
  } finally {
    closeSync(fd);
  }
}
