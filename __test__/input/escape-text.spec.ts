// Issue 17 #7: every value an error shows is escaped JSON-style, so one problem is one line and no
// terminal control sequence gets through; values are shown as a short prefix.
import test from 'ava';
import { formatPlanError, planError, problem } from '../../ts/errors.js';
import { clipValue, errorLine, escapeControl, quoteValue } from '../../ts/input/escape-text.js';
import {
  MAX_ECHOED_VALUE_CHARS,
  MAX_ERROR_LINE_CHARS,
  MAX_SHOWN_VALUE_CHARS,
} from '../../ts/input/limits.js';

const rows: [string, string, string][] = [
  ['newline and carriage return', 'a\nb\rc', 'a\\nb\\rc'],
  ['tab, backspace, form feed', '\t\b\f', '\\t\\b\\f'],
  ['ESC (ANSI CSI) and BEL', '\u001b[31mred\u0007', '\\u001b[31mred\\u0007'],
  ['NUL and DEL', '\u0000\u007f', '\\u0000\\u007f'],
  ['C1 controls (8-bit CSI, NEL)', '\u009b31m\u0085', '\\u009b31m\\u0085'],
  ['line and paragraph separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
  ['bidi overrides and isolates', 'a\u202eb\u2066c\u200f', 'a\\u202eb\\u2066c\\u200f'],
  ['printable text, quotes and unicode untouched', 'ä "q" \\ 😀', 'ä "q" \\ 😀'],
];
for (const [what, input, expected] of rows) {
  test(`escapeControl: ${what}`, (t) => {
    t.is(escapeControl(input), expected);
  });
}

test('quoteValue JSON-quotes and escapes; a long value is cut to a prefix with its length', (t) => {
  t.is(quoteValue('x\ny'), '"x\\ny"');
  t.is(quoteValue('\u001b'), '"\\u001b"');
  const long = 'A'.repeat(8 * 1024 * 1024);
  t.is(quoteValue(long), `"${'A'.repeat(MAX_SHOWN_VALUE_CHARS)}"... (8388608 characters)`);
  t.is(clipValue('short'), 'short');
  t.is(clipValue(long), `${'A'.repeat(MAX_SHOWN_VALUE_CHARS)}... (8388608 characters)`);
});

test('a problem whose source, field and message carry newlines renders as exactly one line', (t) => {
  const e = planError(
    problem(
      'spec',
      '/b\n/config.json',
      'mounts[0].source\nkata-ts: x: y',
      '',
      'bad source "/srv\nkata-ts: fake: injected\u001b[2J"',
    ),
    problem('spec', '/b/config.json', 'mounts[1]', '', 'ok'),
  );
  const lines = formatPlanError(e);
  t.is(lines.length, 2);
  t.is(lines.join('\n').split('\n').length, 2);
  t.is(
    lines[0],
    'kata-ts: /b\\n/config.json: mounts[0].source\\nkata-ts: x: y: bad source "/srv\\nkata-ts: fake: injected\\u001b[2J"',
  );
});

test('an error line is never longer than MAX_ERROR_LINE_CHARS', (t) => {
  const line = errorLine('/x', 'y'.repeat(1_000_000));
  t.true(line.length <= MAX_ERROR_LINE_CHARS);
  t.regex(line, /\.\.\. \(\d+ characters, cut\)$/);
  // Escaping grows a line; the cap applies after it.
  t.true(errorLine('/x', '\u0001'.repeat(100_000)).length <= MAX_ERROR_LINE_CHARS);
});

test('a problem message echoing a long offending value keeps only a short prefix of it, raw or quoted', (t) => {
  const long = `${'B'.repeat(3 * 1024 * 1024)}`;
  const quoted = problem(
    'spec',
    's',
    'f',
    long,
    `expected an integer, got ${JSON.stringify(long)}`,
  );
  t.is(
    quoted.message,
    `f: expected an integer, got "${'B'.repeat(MAX_SHOWN_VALUE_CHARS)}"... (3145728 characters)`,
  );
  const raw = problem('spec', 's', 'f', long, `${long} is unsupported`);
  t.is(
    raw.message,
    `f: ${'B'.repeat(MAX_SHOWN_VALUE_CHARS)}... (3145728 characters) is unsupported`,
  );
  t.is(problem('spec', 's', 'f', 'short', 'got "short"').message, 'f: got "short"');
  const path = `/${'p'.repeat(MAX_ECHOED_VALUE_CHARS - 1)}`;
  t.is(
    problem('spec', 's', 'f', path, `${path} escapes`).message,
    `f: ${path} escapes`,
    'a PATH_MAX path is shown whole',
  );
});
