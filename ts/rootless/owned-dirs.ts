// Host dirs under the rootless dir must belong to the VMM user: each directory created here takes
// the owner of the nearest existing ancestor (create_dir_all_with_inherit_owner).
import { chownSync, existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { RootlessError } from './errors.js';

/** Creates `dir` and missing parents with `mode`, each owned like the nearest existing ancestor. */
export function createDirAllWithInheritOwner(
  dir: string,
  mode: number,
): Result<true, RootlessError> {
  const fail = (message: string): RootlessError => ({
    kind: 'rootless-runtime-dir',
    path: dir,
    message,
  });
  if (!path.posix.isAbsolute(dir)) return err(fail('the path must be absolute'));
  const missing: string[] = [];
  let cur = path.posix.normalize(dir);
  while (!existsSync(cur)) {
    missing.unshift(cur);
    cur = path.posix.dirname(cur);
  }
  try {
    const { uid, gid } = statSync(cur);
    for (const d of missing) {
      mkdirSync(d, { mode });
      chownSync(d, uid, gid);
    }
    return ok(true);
  } catch (e) {
    return err(fail(`creating ${dir}: ${(e as Error).message}`));
  }
}
