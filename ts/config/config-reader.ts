// What reading one configuration file needs: the problem/warning collector, zod shape checks
// of a section, and reading a key through a rule with a fallback (ts/config/parse-config.ts).
import type { z } from 'zod';
import { problem, type Problem } from '../errors.js';
import { issueMessage } from '../input/json-text.js';
import type * as rules from './config-rules.js';
import { expectedKind, hasKind, type IgnoredKind } from './config-schema.js';

export type Table = Record<string, unknown>;

/** Collects the problems and warnings of one file. */
export class Reader {
  readonly problems: Problem[] = [];
  readonly warnings: string[] = [];
  constructor(readonly source: string) {}

  fail(field: string, value: unknown, message: string): void {
    const shown = typeof value === 'bigint' ? String(value) : value;
    this.problems.push(problem('config', this.source, field, shown, message));
  }

  warn(message: string): void {
    this.warnings.push(message);
  }

  /** The rule's value, or `fallback` after recording its message against `field`. */
  check<T>(field: string, value: unknown, result: rules.Rule<T>, fallback: T): T {
    if (result.isOk()) return result.value;
    this.fail(field, value, result.error);
    return fallback;
  }
}

export function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * Shape-checks one section: keys of `schema` through zod, known-but-unused Kata keys by TOML type,
 * anything else a warning. A key failing its check is reported and then read as absent.
 */
export function readSection<S extends z.ZodObject>(
  r: Reader,
  raw: Table,
  schema: S,
  prefix: string,
  ignored: Readonly<Record<string, IgnoredKind>>,
): z.output<S> {
  const known: Table = {};
  for (const [key, value] of Object.entries(raw)) {
    if (Object.hasOwn(schema.shape, key)) {
      known[key] = value;
      continue;
    }
    const kind = Object.hasOwn(ignored, key) ? ignored[key] : undefined;
    if (kind === undefined) r.warn(`unknown key ${prefix}.${key}`);
    else if (!hasKind(value, kind)) r.fail(`${prefix}.${key}`, value, expectedKind(kind));
  }
  const first = schema.safeParse(known);
  if (first.success) return first.data;
  for (const issue of first.error.issues) {
    const value = issue.path.reduce<unknown>(
      (v, k) => (isTable(v) || Array.isArray(v) ? (v as Table)[String(k)] : undefined),
      known,
    );
    const field = issue.path.reduce<string>(
      (f, k) => (typeof k === 'number' ? `${f}[${k}]` : `${f}.${String(k)}`),
      prefix,
    );
    r.fail(field, value, issueMessage(issue));
    delete known[String(issue.path[0])];
  }
  return schema.parse(known);
}

/** Reads one key through a rule: the file's value, else the default; a failure is recorded and `fallback` used. */
export type Take = <I, O>(
  k: string,
  raw: I | undefined,
  def: I,
  rule: (v: I) => rules.Rule<O>,
  fallback: O,
) => O;

export function taker(r: Reader, prefix: string, lenient = false): Take {
  return (k, raw, def, rule, fallback) => {
    const result = rule(raw ?? def);
    return lenient ? result.unwrapOr(fallback) : r.check(`${prefix}.${k}`, raw, result, fallback);
  };
}
