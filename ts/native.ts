// The only importer of the native addon. Every native call goes through `call`/`callAsync`, which
// turn native exceptions into typed `Err`s carrying the stable code set by the binding crate.
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import type * as Addon from '../index.js';

export type NativeCode =
  | 'VCPU_INVALID_DECIMAL'
  | 'VCPU_INVALID_CPUSET'
  | 'VCPU_INVALID_QUOTA'
  | 'VCPU_TOO_LARGE'
  | 'CGROUP_IO'
  | 'CGROUP_PARSE'
  | 'CGROUP_NO_CONTROLLER'
  | 'CGROUP_INVALID'
  | 'CGROUP_PROC'
  | 'CGROUP_DBUS'
  | 'CGROUP_SYSTEMD_STATE'
  | 'TRANSPORT_INVALID'
  | 'TRANSPORT_DIAL'
  | 'TRANSPORT_CLOSED'
  | 'TRANSPORT_LOST'
  | 'TTRPC_TIMEOUT'
  | 'TTRPC_TOO_LARGE'
  | 'TTRPC_STATUS'
  | 'TTRPC_LISTEN'
  | 'WATCH_INVALID'
  | 'WATCH_DIAL'
  | 'WATCH_START'
  | 'WATCH_COPY'
  | 'WATCH_CLOSED'
  | 'ROOTLESS_SETGROUPS'
  | 'ROOTLESS_SETGID'
  | 'ROOTLESS_SETUID'
  | 'ROOTLESS_VERIFY'
  | 'ROOTLESS_ROOT'
  | 'ROOTLESS_SPAWN'
  | 'NETNS_OPEN'
  | 'NETNS_NOT_NAMESPACE'
  | 'NETNS_ENTER'
  | 'NETNS_NETLINK'
  | 'NETNS_NO_LINK'
  | 'NETNS_INVALID_NAME'
  | 'NETNS_TAP'
  | 'NETNS_WORKER'
  | 'PANIC'
  | 'CANCELLED'
  | 'NAPI_ERROR'
  | 'UNKNOWN';

const KNOWN_CODES: ReadonlySet<string> = new Set<NativeCode>([
  'VCPU_INVALID_DECIMAL',
  'VCPU_INVALID_CPUSET',
  'VCPU_INVALID_QUOTA',
  'VCPU_TOO_LARGE',
  'CGROUP_IO',
  'CGROUP_PARSE',
  'CGROUP_NO_CONTROLLER',
  'CGROUP_INVALID',
  'CGROUP_PROC',
  'CGROUP_DBUS',
  'CGROUP_SYSTEMD_STATE',
  'TRANSPORT_INVALID',
  'TRANSPORT_DIAL',
  'TRANSPORT_CLOSED',
  'TRANSPORT_LOST',
  'TTRPC_TIMEOUT',
  'TTRPC_TOO_LARGE',
  'TTRPC_STATUS',
  'TTRPC_LISTEN',
  'WATCH_INVALID',
  'WATCH_DIAL',
  'WATCH_START',
  'WATCH_COPY',
  'WATCH_CLOSED',
  'ROOTLESS_SETGROUPS',
  'ROOTLESS_SETGID',
  'ROOTLESS_SETUID',
  'ROOTLESS_VERIFY',
  'ROOTLESS_ROOT',
  'ROOTLESS_SPAWN',
  'NETNS_OPEN',
  'NETNS_NOT_NAMESPACE',
  'NETNS_ENTER',
  'NETNS_NETLINK',
  'NETNS_NO_LINK',
  'NETNS_INVALID_NAME',
  'NETNS_TAP',
  'NETNS_WORKER',
  'PANIC',
  'CANCELLED',
  'NAPI_ERROR',
]);

export interface NativeError {
  readonly kind: 'native';
  readonly code: NativeCode;
  readonly message: string;
}

/** Maps a thrown native error to its code. Async rejections carry the code as `CODE: ` prefix. */
export function toNativeError(e: unknown): NativeError {
  const raw = e instanceof Error ? e : new Error(String(e));
  const prefixed = /^([A-Z][A-Z0-9_]+): (.*)$/s.exec(raw.message);
  const candidate = prefixed?.[1] ?? (raw as { code?: unknown }).code;
  const code =
    typeof candidate === 'string' && KNOWN_CODES.has(candidate)
      ? (candidate as NativeCode)
      : 'UNKNOWN';
  const message = prefixed && code !== 'UNKNOWN' ? (prefixed[2] ?? raw.message) : raw.message;
  return { kind: 'native', code, message };
}

// Loaded once at module start; a missing or broken binary becomes an Err on first use rather
// than an exception at import time.
const loaded: Result<typeof Addon, NativeError> = await import('../index.js').then(
  (m: typeof Addon) => ok(m),
  (e: unknown) =>
    err({
      kind: 'native',
      code: 'UNKNOWN',
      message: `native addon failed to load: ${toNativeError(e).message}`,
    } as const),
);

function load(): typeof Addon {
  if (loaded.isErr()) throw Object.assign(new Error(loaded.error.message), { code: 'UNKNOWN' });
  return loaded.value;
}

/** The addon's exports, for types; call through `call`/`callAsync`. */
export type NativeAddon = typeof Addon;

/** Calls a synchronous native export; a throw becomes `Err(NativeError)`. */
export function call<T>(fn: (native: NativeAddon) => T): Result<T, NativeError> {
  try {
    return ok(fn(load()));
  } catch (e) {
    return err(toNativeError(e));
  }
}

/** Calls an async native export; a rejection becomes `Err(NativeError)`. */
export function callAsync<T>(fn: (native: NativeAddon) => Promise<T>): ResultAsync<T, NativeError> {
  return ResultAsync.fromPromise(
    Promise.resolve().then(() => fn(load())),
    toNativeError,
  );
}
