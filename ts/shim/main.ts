// `containerd-shim-kata-ts-v2`: containerd's shim v2 entry point (start, delete) and the
// long-running server it starts (serve). Each action loads only its own modules: containerd
// bounds `delete` to 5 s, and the lifecycle behind `serve` is slow to load.
import type { SandboxOptions } from '../lifecycle/sandbox.js';
import { safeLine } from '../input/escape-text.js';
import { parseShimFlags } from './flags.js';

export interface ShimOptions {
  /** Lifecycle options for the server (the test entry point passes its hooks here; none when shipped). */
  readonly sandbox?: Partial<SandboxOptions>;
}

/** Runs the shim with argv (after the program name); returns the exit code. */
export async function shimMain(
  argv: readonly string[],
  options: ShimOptions = {},
): Promise<number> {
  const flags = parseShimFlags(argv, process.env, process.cwd());
  if (flags.isErr()) {
    process.stderr.write(`${safeLine(`containerd-shim-kata-ts-v2: ${flags.error}`)}\n`);
    return 2;
  }
  switch (flags.value.action) {
    case 'start':
      return (await import('./start.js')).shimStart(flags.value, argv);
    case 'delete':
      return (await import('./delete.js')).shimDelete(flags.value);
    case 'serve':
      return (await import('./serve.js')).shimServe(flags.value, options.sandbox);
  }
}
