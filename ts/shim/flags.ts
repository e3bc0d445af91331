// The shim's command line as containerd 1.6 passes it (Go `flag` syntax: `-name value`,
// `-name=value`, `--name value`, bool `-debug`), then the action: `start` or `delete`. (The
// host-wide daemon is started as `containerd-shim-kata-ts-v2 daemon`, without flags: main.ts.)
import { err, ok, type Result } from 'neverthrow';

export interface ShimFlags {
  readonly namespace: string;
  readonly address: string;
  readonly publishBinary: string;
  readonly id: string;
  readonly bundle: string;
  readonly debug: boolean;
  /** containerd's ttrpc address (TTRPC_ADDRESS), for events. */
  readonly ttrpcAddress: string;
  readonly action: 'start' | 'delete';
}

const STRING_FLAGS = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
} as const;

/** Parses argv (after the program name) and the environment. */
export function parseShimFlags(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Result<ShimFlags, string> {
  const values: Record<string, string> = {};
  let debug = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const m = /^--?([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (m === null) {
      rest.push(arg);
      continue;
    }
    const [, name, inline] = m as unknown as [string, string, string | undefined];
    if (name === 'debug' || name === 'v') {
      debug = inline === undefined ? true : inline !== 'false';
      continue;
    }
    const key = STRING_FLAGS[name as keyof typeof STRING_FLAGS];
    if (key === undefined) return err(`flag provided but not defined: -${name}`);
    const value = inline ?? argv[++i];
    if (value === undefined) return err(`flag needs an argument: -${name}`);
    values[key] = value;
  }
  const action = rest[0];
  if (action !== 'start' && action !== 'delete')
    return err(`unknown action ${JSON.stringify(action ?? '')}: want start or delete`);
  for (const needed of ['namespace', 'id'] as const)
    if (!values[needed]) return err(`-${needed} is required`);
  return ok({
    namespace: values['namespace']!,
    address: values['address'] ?? '',
    publishBinary: values['publishBinary'] ?? '',
    id: values['id']!,
    bundle: values['bundle'] ?? cwd,
    debug,
    ttrpcAddress: env['TTRPC_ADDRESS'] ?? (values['address'] ? `${values['address']}.ttrpc` : ''),
    action,
  });
}
