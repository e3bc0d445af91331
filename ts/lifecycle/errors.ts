// Lifecycle errors: which step failed, for which sandbox, and why (the lower layer's message).
// The CLI prints them as `kata-ts: <sandbox id>: <step>: <what>`.
import { errorLine, safeLine } from '../input/escape-text.js';

export type LifecycleStep =
  | 'input'
  | 'plan'
  | 'dirs'
  | 'rootless-user'
  | 'cgroups'
  | 'vm'
  | 'place-vmm'
  | 'agent'
  | 'create-sandbox'
  | 'hotplug'
  | 'resize'
  | 'copy'
  | 'create-container'
  | 'start-container'
  | 'wait'
  | 'kill'
  | 'remove-container'
  | 'stop'
  | 'cleanup';

export type LifecycleError =
  | { readonly kind: 'state'; readonly sandboxId: string; readonly message: string }
  | { readonly kind: 'not-found'; readonly sandboxId: string; readonly message: string }
  | { readonly kind: 'exists'; readonly sandboxId: string; readonly message: string }
  /** Bad input (config, bundle, plan problems): exit code 2 in the CLI. */
  | {
      readonly kind: 'input';
      readonly sandboxId: string;
      readonly lines: readonly string[];
      readonly message: string;
    }
  | {
      readonly kind: 'step';
      readonly sandboxId: string;
      readonly step: LifecycleStep;
      readonly message: string;
    }
  /** The VM went away under a running sandbox. */
  | { readonly kind: 'vm-gone'; readonly sandboxId: string; readonly message: string };

export function stepError(
  sandboxId: string,
  step: LifecycleStep,
  e: { readonly message: string } | string,
): LifecycleError {
  return { kind: 'step', sandboxId, step, message: typeof e === 'string' ? e : e.message };
}

/** `kata-ts: …` lines for an error. */
export function formatLifecycleError(e: LifecycleError): string[] {
  // Control characters escaped here, where every lifecycle error is rendered (ts/input/escape-text.ts).
  if (e.kind === 'input') return e.lines.map(safeLine);
  const where = e.sandboxId === '' ? 'sandbox' : e.sandboxId;
  const step = e.kind === 'step' ? `${e.step}: ` : '';
  return [errorLine(where, `${step}${e.message}`)];
}

export function stateError(sandboxId: string, message: string): LifecycleError {
  return { kind: 'state', sandboxId, message };
}
