// first_valid_executable_path: the first candidate that is a regular file with any execute bit.
import { statSync } from 'node:fs';
import { err, ok, type Result } from 'neverthrow';
import type { RootlessError } from './errors.js';

/** Where `useradd` / `userdel` are looked for, in order. */
export const SBIN_DIRS = ['/usr/sbin', '/sbin', '/bin'] as const;

function isExecutableFile(path: string): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** The first path that is a regular file with an execute bit set. */
export function firstValidExecutablePath(paths: readonly string[]): Result<string, RootlessError> {
  const found = paths.find(isExecutableFile);
  if (found !== undefined) return ok(found);
  const shown = `[${paths.map((p) => JSON.stringify(p)).join(', ')}]`;
  return err({
    kind: 'rootless-no-executable',
    paths,
    message: `No valid executable found in paths: ${shown}`,
  });
}

/** `name` found in /usr/sbin, /sbin or /bin. */
export function findSbinTool(
  name: string,
  dirs: readonly string[] = SBIN_DIRS,
): Result<string, RootlessError> {
  return firstValidExecutablePath(dirs.map((d) => `${d}/${name}`));
}
