// Escaping what an error line shows, so one problem is always one line: a value holding "\n" or
// "\r" cannot start a forged `kata-ts:` line, and ESC/C1 sequences cannot drive the terminal.
import { MAX_ERROR_LINE_CHARS, MAX_SHOWN_VALUE_CHARS } from './limits.js';

/**
 * C0 controls, DEL, C1 controls, the Unicode line/paragraph separators (U+2028/9 end a line in
 * some viewers and in JavaScript source) and the bidi overrides/isolates that reorder what a
 * terminal shows ("Trojan Source"). One character class, so the scan is linear.
 */
const UNSAFE =
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const UNSAFE_ANY = new RegExp(UNSAFE.source);

const SHORT: Readonly<Record<string, string>> = {
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};

function escapeOne(c: string): string {
  return SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** `text` with every unsafe character written JSON-style (`\n`, `\u001b`, `\u2028`); nothing else changes. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

/** Whether `text` holds a character escapeControl would escape. */
export function hasControl(text: string): boolean {
  return UNSAFE_ANY.test(text);
}

/**
 * A value as an error shows it: JSON-quoted (so quotes and backslashes are unambiguous), control
 * characters escaped, and at most `maxChars` of it, with the full length said when cut.
 */
export function quoteValue(value: unknown, maxChars = MAX_SHOWN_VALUE_CHARS): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  if (text.length <= maxChars) return escapeControl(JSON.stringify(text));
  return `${escapeControl(JSON.stringify(text.slice(0, maxChars)))}... (${text.length} characters)`;
}

/**
 * A value shown unquoted, as Kata's own messages do (`foo is unsupported block device type.`):
 * whole when short, else its first `maxChars` characters and its length. Control characters are
 * left to the line's escaping (errorLine).
 */
export function clipValue(value: string, maxChars = MAX_SHOWN_VALUE_CHARS): string {
  return value.length <= maxChars
    ? value
    : `${value.slice(0, maxChars)}... (${value.length} characters)`;
}

/** One printable line: control characters escaped, at most MAX_ERROR_LINE_CHARS long. */
export function safeLine(text: string): string {
  const line = escapeControl(text);
  if (line.length <= MAX_ERROR_LINE_CHARS) return line;
  const note = `... (${line.length} characters, cut)`;
  return line.slice(0, MAX_ERROR_LINE_CHARS - note.length) + note;
}

/** The one shape of an error line: `kata-ts: <where>: <what>`, escaped and bounded. */
export function errorLine(where: string, what: string): string {
  return safeLine(`kata-ts: ${where}: ${what}`);
}
