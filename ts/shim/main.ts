// `containerd-shim-kata-ts-v2`: containerd's shim v2 entry point (start, delete) and the
// host-wide daemon `start` has started behind the front (daemon). Each action loads only its
// own modules: containerd bounds `delete` to 5 s, and the lifecycle behind the daemon is slow
// to load.
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import { safeLine } from '../input/escape-text.js';
import { parseShimFlags } from './flags.js';

export interface ShimOptions {
  /** Lifecycle options for the daemon (the test entry point passes its hooks here; none when shipped). */
  readonly sandbox?: Partial<SandboxOptions>;
}

/** Runs the shim with argv (after the program name); returns the exit code. */
export async function shimMain(
  argv: readonly string[],
  options: ShimOptions = {},
): Promise<number> {
  if (argv.length === 1 && argv[0] === 'daemon')
    return (await import('./daemon.js')).shimDaemon(options.sandbox);
  const flags = parseShimFlags(argv, process.env, process.cwd());
  if (flags.isErr()) {
    process.stderr.write(`${safeLine(`containerd-shim-kata-ts-v2: ${flags.error}`)}\n`);
    return 2;
  }
  switch (flags.value.action) {
    case 'start':
      return (await import('./start.js')).shimStart(flags.value);
    case 'delete':
      return (await import('./delete.js')).shimDelete(flags.value);
  }
}
