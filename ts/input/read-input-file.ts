// The one way kata-ts reads a file it was pointed at (a config, a bundle's config.json and
// rootfs-mounts.json, host facts). A FIFO, device or socket is never read: `kata-ts plan --config
// <fifo>` used to block forever, and /dev/zero would fill memory. The file is opened non-blocking
// (opening a FIFO then never waits for a writer) without becoming our controlling terminal, checked
// with stat before and fstat on the open descriptor after (no race with a rename), capped in size, and decoded as UTF-8.
import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readSync,
  statSync,
  type Stats,
} from 'node:fs';
import { err, ok, type Result } from 'neverthrow';

export interface ReadInputOptions {
  /** Refused when larger; a named limit from ./limits.ts. */
  readonly maxBytes: number;
  /** The limit's name, for the message. */
  readonly limitName: string;
  /**
   * Refuse a symlink as the last component (O_NOFOLLOW). For names inside a bundle, where whoever
   * made the bundle could have planted a link to a host file; not for `--config`, which Kata
   * installs as a symlink into /usr/share/defaults.
   */
  readonly noFollow?: boolean;
}

export type ReadInputErrorKind =
  'missing' | 'not-regular' | 'symlink' | 'too-large' | 'not-utf8' | 'io';

export interface ReadInputError {
  readonly kind: ReadInputErrorKind;
  readonly path: string;
  /** What is wrong, for `kata-ts: <path>: <what>`; never the file's content. */
  readonly what: string;
}

function kindName(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

function symlink(path: string): ReadInputError {
  return {
    kind: 'symlink',
    path,
    what: 'cannot read: is a symbolic link (not followed inside a bundle)',
  };
}

function ioError(path: string, e: unknown, noFollow: boolean): ReadInputError {
  const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ENOENT') return { kind: 'missing', path, what: 'cannot read: no such file' };
  if (code === 'ELOOP' && noFollow) return symlink(path);
  if (code === 'EACCES' || code === 'EPERM')
    return { kind: 'io', path, what: 'cannot read: permission denied' };
  if (code === 'ENOTDIR')
    return { kind: 'missing', path, what: 'cannot read: a parent is not a directory' };
  return { kind: 'io', path, what: `cannot read: ${code}` };
}

function notRegular(path: string, st: Stats): ReadInputError {
  return { kind: 'not-regular', path, what: `cannot read: is ${kindName(st)}, not a regular file` };
}

/** Reads `fd` (already checked regular) to the end, refusing more than `max` bytes. */
function readCapped(fd: number, max: number): Buffer | null {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(Math.min(1 << 20, max + 1 - total));
    const n = readSync(fd, chunk, 0, chunk.length, null);
    if (n === 0) return Buffer.concat(chunks, total);
    chunks.push(chunk.subarray(0, n));
    total += n;
    if (total > max) return null; // grew past the cap after fstat
  }
}

/** The file's text; an Err names what is wrong without quoting the file. */
export function readInputFile(path: string, o: ReadInputOptions): Result<string, ReadInputError> {
  const noFollow = o.noFollow ?? false;
  const flags =
    constants.O_RDONLY |
    constants.O_NONBLOCK |
    constants.O_NOCTTY |
    (noFollow ? constants.O_NOFOLLOW : 0);
  let fd: number;
  try {
    // Never open a special file at all when it is one already (opening some devices acts, e.g. a
    // watchdog); the fstat below closes the race with a swap after this check.
    const before = noFollow ? lstatSync(path) : statSync(path);
    if (before.isSymbolicLink()) return err(symlink(path));
    if (!before.isFile()) return err(notRegular(path, before));
    fd = openSync(path, flags);
  } catch (e) {
    return err(ioError(path, e, noFollow));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return err(notRegular(path, st));
    const tooLarge: ReadInputError = {
      kind: 'too-large',
      path,
      what: `cannot read: larger than ${o.maxBytes} bytes (${o.limitName})`,
    };
    if (st.size > o.maxBytes) return err(tooLarge);
    const bytes = readCapped(fd, o.maxBytes);
    if (bytes === null) return err(tooLarge);
    try {
      return ok(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      return err({ kind: 'not-utf8', path, what: 'cannot read: not UTF-8 text' });
    }
  } catch (e) {
    return err(ioError(path, e, noFollow));
  } finally {
    closeSync(fd);
  }
}
