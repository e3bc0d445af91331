// Host-only path prefixing: when rootless, host paths (VM dir, QMP socket dir, shared dir,
// initdata dir, persist dir) move under the VMM user's runtime dir. Guest paths never do: the
// functions here refuse a GuestPath at compile time. Pure, so it belongs to the planner;
// ts/rootless/ (which makes the user and launches as it) re-exports it.
import { ok, type Result } from 'neverthrow';
import { hostPath, type GuestPath, type HostPath, type PathError } from '../paths.js';

/** Whether the VMM runs rootless, and if so its runtime dir (`/run/user/<uid>`). */
export type RootlessContext =
  { readonly rootless: false } | { readonly rootless: true; readonly dir: HostPath };

export const NOT_ROOTLESS: RootlessContext = { rootless: false };

/** `/run/user/<uid>`: the runtime dir of the VMM user. */
export function vmmUserRuntimeDir(uid: number, root = '/run/user'): Result<HostPath, PathError> {
  return hostPath(`${root}/${uid}`);
}

/** The rootless dir is `XDG_RUNTIME_DIR` when set, else `/run/user/<uid>`. */
export function rootlessContext(
  rootless: boolean,
  env: Readonly<Record<string, string | undefined>>,
  uid: number,
): Result<RootlessContext, PathError> {
  if (!rootless) return ok(NOT_ROOTLESS);
  const xdg = env['XDG_RUNTIME_DIR'];
  const dir = xdg !== undefined && xdg !== '' ? hostPath(xdg) : vmmUserRuntimeDir(uid);
  return dir.map((d) => ({ rootless: true, dir: d }) as const);
}

/** Rejects guest paths at compile time: `GuestPath` arguments have type `never`. */
type NotGuest<P extends string> = P extends GuestPath ? never : P;

/**
 * prefix_with_rootless_dir: `/run/kata` → `<dir>/run/kata`, relative `a/b` → `<dir>/a/b` when
 * rootless; unchanged (but checked absolute) otherwise. Only host paths may be passed.
 */
export function prefixWithRootlessDir<P extends string>(
  p: NotGuest<P>,
  ctx: RootlessContext,
): Result<HostPath, PathError> {
  if (!ctx.rootless) return hostPath(p);
  const rel = p.replace(/^\/+/, '');
  // Concatenated, not joined, so a `..` segment is refused by hostPath instead of normalized away.
  return hostPath(rel === '' ? ctx.dir : `${ctx.dir}/${rel}`);
}
