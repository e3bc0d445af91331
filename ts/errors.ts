// Errors are data: a discriminated union with the field path and the offending value; the
// message is derived from them once, when the error is made.
import { clipValue, errorLine, quoteValue } from './input/escape-text.js';
import { MAX_ECHOED_VALUE_CHARS } from './input/limits.js';

/** Where a problem is: a file plus a field path (`hypervisor.qemu.block_device_aio`). */
export interface Problem {
  /** `config`, `spec`, `annotation`, `mount`, `plan`, … */
  readonly kind: string;
  /** File or input the problem is in (config path, bundle dir, annotation key). */
  readonly source: string;
  /** Field path inside the source, e.g. `hypervisor.qemu.default_vcpus`. */
  readonly field: string;
  /** The offending value, as text (may be empty). */
  readonly value: string;
  /** Human-readable message naming the field. */
  readonly message: string;
}

export function problem(
  kind: string,
  source: string,
  field: string,
  value: unknown,
  what: string,
): Problem {
  const shown = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  return {
    kind,
    source,
    field,
    value: shown ?? '',
    message: `${field}: ${clipEchoes(what, shown ?? '')}`,
  };
}

/**
 * A message never carries more than a short prefix of an offending value longer than
 * MAX_ECHOED_VALUE_CHARS: an echo of it (raw or JSON-quoted) is cut where every problem is made,
 * whatever module wrote the message.
 */
function clipEchoes(what: string, value: string): string {
  if (value.length <= MAX_ECHOED_VALUE_CHARS) return what;
  return what
    .split(JSON.stringify(value))
    .join(quoteValue(value))
    .split(value)
    .join(clipValue(value));
}

/** One or more problems found while reading or planning; validation reports all of them. */
export interface PlanError {
  readonly kind: 'plan-error';
  readonly problems: readonly Problem[];
}

export function planError(...problems: Problem[]): PlanError {
  return { kind: 'plan-error', problems };
}

/** `kata-ts: <where>: <what>` lines, one per problem, control characters escaped (ts/input/escape-text.ts). */
export function formatPlanError(e: PlanError): string[] {
  return e.problems.map((p) => errorLine(p.source, p.message));
}
