// Issue 17 #5: base64 is checked by a native decode + re-encode, not a regex that overflowed V8's
// stack on an 8 MiB value. Semantics of Kata's Rust `base64::STANDARD` decoder.
import test from 'ava';
import { decodeStandardBase64 } from '../../ts/input/base64.js';

const rows: [string, string, string | null][] = [
  ['empty', '', ''],
  ['padded', 'aGk=', 'hi'],
  ['two pads', 'aA==', 'h'],
  ['no padding needed', 'aGV5', 'hey'],
  ['missing padding', 'aGk', null],
  ['URL-safe alphabet', 'a-_=', null],
  ['whitespace inside', 'aG k=', null],
  ['a newline', 'aGk=\n', null],
  ['non-zero trailing bits', 'aGl=', null],
  ['padding in the middle', 'aG==aGk=', null],
  ['characters outside the alphabet', 'aGk*', null],
];
for (const [what, input, expected] of rows) {
  test(`decodeStandardBase64: ${what}`, (t) => {
    const out = decodeStandardBase64(input);
    t.is(out === null ? null : out.toString('latin1'), expected);
  });
}

test('8 MiB of base64 (valid and invalid) is checked in well under a second', (t) => {
  const valid = Buffer.alloc(6 * 1024 * 1024, 7).toString('base64');
  const started = performance.now();
  t.is(decodeStandardBase64(valid)?.length, 6 * 1024 * 1024);
  t.is(decodeStandardBase64(`${'A'.repeat(8 * 1024 * 1024 - 1)}*`), null);
  t.true(performance.now() - started < 1000);
});
