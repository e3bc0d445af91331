// JSON parsing whose errors say where the text is wrong, never what it holds: V8's messages quote
// the start of the input (`Unexpected token 'r', "root:*:202"... is not valid JSON`), which is how
// `--host-facts /etc/shadow` printed a password hash.
import { err, ok, type Result } from 'neverthrow';
import type { z } from 'zod';
import { quoteValue } from './escape-text.js';

/** Line and column (1-based) of a character offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: offset - start + 1 };
}

/**
 * V8 messages that carry a position describe the grammar ("Expected ',' or '}' after property
 * value in JSON at position 12"); only those descriptions are kept, and only when whatever they
 * quote is JSON punctuation.
 */
const POSITIONED = /^([^"\n]{1,80}?) in JSON at position (\d+)/;
const QUOTED_NON_PUNCTUATION = /'[^',:{}[\]]'/;

/** Where and why a text is not JSON; `line`/`column` when V8 said where. Never any of the text. */
export interface JsonSyntaxError {
  readonly line?: number;
  readonly column?: number;
  readonly message: string;
}

/** What is wrong with `text` as JSON (from V8's `message`), without any of its content. */
export function jsonSyntaxError(text: string, message: string): JsonSyntaxError {
  const m = POSITIONED.exec(message);
  if (m === null || QUOTED_NON_PUNCTUATION.test(m[1]!)) {
    return {
      message: message.startsWith('Unexpected end of JSON input')
        ? 'invalid JSON: unexpected end of input'
        : 'invalid JSON',
    };
  }
  const { line, column } = lineColumn(text, Number(m[2]));
  return {
    line,
    column,
    message: `invalid JSON at line ${line} column ${column}: ${m[1]!.trim()}`,
  };
}

/** The field a JSON syntax problem is reported against: `line:column`, or `json`. */
export function jsonErrorField(e: JsonSyntaxError): string {
  return e.line === undefined ? 'json' : `${e.line}:${e.column}`;
}

/** JSON.parse with a content-free error. */
export function parseJsonText(text: string): Result<unknown, JsonSyntaxError> {
  try {
    return ok(JSON.parse(text) as unknown);
  } catch (e) {
    return err(jsonSyntaxError(text, e instanceof Error ? e.message : ''));
  }
}

/**
 * A zod issue's message without the input echoed: zod quotes unknown keys, which come from the
 * file; they are shown shortened and escaped like any value.
 */
export function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.slice(0, 3).map((k) => quoteValue(k));
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys.join(', ')}${issue.keys.length > 3 ? `, and ${issue.keys.length - 3} more` : ''}`;
  }
  return issue.message;
}
