// Starts QEMU as a node child that inherits the pod network's tap (and vhost-net) fds: fd k of
// `inherit` becomes fd 3 + k in QEMU, the numbers the planned `-netdev tap,fd=` arguments name.
// Same process handling as the default launcher: own session, log appended, a symlink or
// non-regular log refused.
import { spawn } from 'node:child_process';
import { closeSync, constants, fstatSync, openSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { err, ok } from 'neverthrow';
import type { LaunchedPid, PidLauncher } from '../qemu/vm.js';

/** The first fd number QEMU sees for `inherit[0]` (after stdin, stdout, stderr). */
export const FIRST_CHILD_FD = 3;

const LOG_FLAGS =
  constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW;

export function inheritingLauncher(inherit: readonly number[]): PidLauncher {
  return ({ binary, args, logPath }) => {
    let log: number;
    try {
      log = openSync(logPath, LOG_FLAGS | constants.O_NOCTTY, 0o640);
    } catch (e) {
      return err({ message: `log ${logPath}: ${(e as NodeJS.ErrnoException).code ?? 'EIO'}` });
    }
    try {
      if (!fstatSync(log).isFile()) return err({ message: `log ${logPath}: not a regular file` });
      let exit: { code: number | null; signal: number | null } | null = null;
      const child = spawn(binary, [...args], {
        stdio: ['ignore', log, log, ...inherit],
        detached: true,
      });
      child.once('exit', (code, signal) => {
        exit = { code, signal: signal !== null ? osConstants.signals[signal] : null };
      });
      child.once('error', () => {
        exit ??= { code: null, signal: null };
      });
      if (child.pid === undefined) return err({ message: `cannot start ${binary}` });
      const launched: LaunchedPid = { pid: child.pid, exit: () => exit };
      return ok(launched);
    } finally {
      closeSync(log);
    }
  };
}
