import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';

/** An absolute, normalized path on the host. Minted only here. */
export type HostPath = string & { readonly __brand: 'HostPath' };
/** An absolute, normalized path inside the guest VM. Minted only here. */
export type GuestPath = string & { readonly __brand: 'GuestPath' };

export interface PathError {
  readonly kind: 'invalid-path';
  readonly side: 'host' | 'guest';
  readonly value: string;
  readonly reason: string;
  readonly message: string;
}

function pathError(side: 'host' | 'guest', value: string, reason: string): PathError {
  return {
    kind: 'invalid-path',
    side,
    value,
    reason,
    message: `${side} path ${JSON.stringify(value)}: ${reason}`,
  };
}

function checkAbsolute(side: 'host' | 'guest', value: string): Result<string, PathError> {
  if (value.includes('\0')) return err(pathError(side, value, 'contains a NUL byte'));
  if (!path.posix.isAbsolute(value)) return err(pathError(side, value, 'must be absolute'));
  if (value.split('/').includes('..')) return err(pathError(side, value, "must not contain '..'"));
  const normal = path.posix.normalize(value);
  return ok(normal.length > 1 && normal.endsWith('/') ? normal.slice(0, -1) : normal);
}

/** Checks and brands a host path (absolute, no `..`, normalized). */
export function hostPath(value: string): Result<HostPath, PathError> {
  return checkAbsolute('host', value).map((p) => p as HostPath);
}

/** Checks and brands a guest path (absolute, no `..`, normalized). */
export function guestPath(value: string): Result<GuestPath, PathError> {
  return checkAbsolute('guest', value).map((p) => p as GuestPath);
}

/** True when `p` is `root` or lies below it. */
export function isWithin(root: GuestPath | HostPath, p: GuestPath | HostPath): boolean {
  return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
}

/**
 * Appends user-controlled segments to a guest path and re-checks that the result stays inside
 * `root`. A segment holding `/`, `..` or NUL is refused rather than normalized away.
 */
export function joinGuest(root: GuestPath, ...segments: string[]): Result<GuestPath, PathError> {
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0')) {
      return err(
        pathError(
          'guest',
          `${root}/${segments.join('/')}`,
          `segment ${JSON.stringify(s)} is not a plain name`,
        ),
      );
    }
  }
  return guestPath(path.posix.join(root, ...segments)).andThen((p) =>
    isWithin(root, p) ? ok(p) : err(pathError('guest', p, `escapes ${root}`)),
  );
}

/** Appends plain name segments to a host path, with the same checks as `joinGuest`. */
export function joinHost(root: HostPath, ...segments: string[]): Result<HostPath, PathError> {
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('/') || s.includes('\0')) {
      return err(
        pathError(
          'host',
          `${root}/${segments.join('/')}`,
          `segment ${JSON.stringify(s)} is not a plain name`,
        ),
      );
    }
  }
  return hostPath(path.posix.join(root, ...segments));
}

/** Brands a compile-time constant; throws (a bug) when the constant is not a valid path. */
export function guestConst(value: string): GuestPath {
  return guestPath(value)._unsafeUnwrap();
}

/** Brands a compile-time constant; throws (a bug) when the constant is not a valid path. */
export function hostConst(value: string): HostPath {
  return hostPath(value)._unsafeUnwrap();
}
