// The files `kata-ts create --stdout F --stderr G` writes a container's output to. What a
// container prints can be secret (a configmap value, a token), so a new file is private: 0600,
// or 0640 with the group the operator names (`--output-group`). It is created exclusively and no
// symlink is followed at its name; an existing regular file is appended to as it is (its owner
// chose its mode); anything else (a FIFO, a device, a link) is refused.
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  openSync,
  readFileSync,
} from 'node:fs';
import { err, ok, type Result } from 'neverthrow';
import { quoteValue } from '../input/escape-text.js';

/** Mode of a new output file: private, or group-readable when a group is given. */
export const OUTPUT_FILE_MODE = 0o600;
export const OUTPUT_FILE_GROUP_MODE = 0o640;

/** `--output-group`: a numeric gid or a name from /etc/group. */
export function resolveGroup(group: string, groupFile = '/etc/group'): Result<number, string> {
  if (/^\d{1,10}$/.test(group)) return ok(Number(group));
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch (e) {
    return err(
      `--output-group: cannot read ${groupFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const line = text.split('\n').find((l) => l.split(':')[0] === group);
  const gid = line?.split(':')[2];
  return gid !== undefined && /^\d+$/.test(gid)
    ? ok(Number(gid))
    : err(`--output-group: no group ${quoteValue(group)}`);
}

const APPEND =
  constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * Opens `file` for a container's output: a new file 0600 (0640 owned by `gid`), created
 * exclusively; an existing regular file appended to. `flag` names the option in errors.
 */
export function openOutputFile(
  flag: string,
  file: string,
  gid: number | null = null,
): Result<number, string> {
  const where = `${flag} ${quoteValue(file)}`;
  const mode = gid === null ? OUTPUT_FILE_MODE : OUTPUT_FILE_GROUP_MODE;
  let fd: number;
  let created = true;
  try {
    // The mode is passed to open(2) and masked by the umask; fchmod below makes it exact.
    fd = openSync(file, APPEND | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST') return err(`${where}: ${code ?? (e as Error).message}`);
    created = false;
    try {
      fd = openSync(file, APPEND);
    } catch (e2) {
      const c = (e2 as NodeJS.ErrnoException).code;
      return err(
        `${where}: ${c === 'ELOOP' ? 'is a symbolic link' : c === 'ENXIO' ? 'is a FIFO without a reader' : (c ?? (e2 as Error).message)}`,
      );
    }
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      return err(`${where}: not a regular file`);
    }
    if (created) {
      if (gid !== null) fchownSync(fd, st.uid, gid);
      // fchmod, not the umask's leftovers: exactly 0600 / 0640.
      fchmodSync(fd, mode);
    }
  } catch (e) {
    closeSync(fd);
    return err(`${where}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return ok(fd);
}

/** `create`'s output options. */
export interface OutputFlags {
  readonly stdout?: string;
  readonly stderr?: string;
  readonly outputGroup?: string;
}

/**
 * The container's stdout and stderr fds for `create` (/dev/null when not given), or one
 * `kata-ts: …` line per problem; nothing stays open on failure.
 */
export function openOutputs(f: OutputFlags): Result<{ out: number; err: number }, string[]> {
  const gid = f.outputGroup === undefined ? ok(null) : resolveGroup(f.outputGroup);
  if (gid.isErr()) return err([`kata-ts: ${gid.error}`]);
  const open = (flag: string, file: string | undefined) =>
    file === undefined ? ok(openSync('/dev/null', 'a')) : openOutputFile(flag, file, gid.value);
  const out = open('--stdout', f.stdout);
  const errFd = open('--stderr', f.stderr);
  if (out.isOk() && errFd.isOk()) return ok({ out: out.value, err: errFd.value });
  for (const r of [out, errFd]) if (r.isOk()) closeSync(r.value);
  return err([out, errFd].flatMap((r) => (r.isErr() ? [`kata-ts: ${r.error}`] : [])));
}
