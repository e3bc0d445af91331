// Node flags for the long-running daemon, chosen by measurement (bench/shim.bench.ts and
// /work/notes/h-daemon-readme.md): a small young generation keeps the resident set of an idle
// daemon low; the heap cap leaves room for many pods.
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];

/** The flags the daemon is started with. */
export function daemonNodeFlags(): string[] {
  return [...DAEMON_NODE_FLAGS];
}
