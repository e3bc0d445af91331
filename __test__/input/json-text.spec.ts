// Issue 17 #8: a JSON syntax error says where, never what the text holds.
import test from 'ava';
import { z } from 'zod';
import { issueMessage, parseJsonText } from '../../ts/input/json-text.js';

const secret = 'root:$y$j9T$secretsecret:20210:0:99999:7:::';

const rows: [string, string, string][] = [
  ['a password file', `${secret}\n`, 'invalid JSON'],
  ['a bare word after whitespace', '  \n  hunter2', 'invalid JSON'],
  ['a token inside an object', '{"a": hunter2}', 'invalid JSON'],
  [
    'a trailing comma',
    '{"a": 1,\n}',
    'invalid JSON at line 2 column 1: Expected double-quoted property name',
  ],
  [
    'a missing comma',
    '{"a": 1\n "b": 2}',
    "invalid JSON at line 2 column 2: Expected ',' or '}' after property value",
  ],
  [
    'an unterminated document',
    '{"a": "secret',
    'invalid JSON at line 1 column 14: Unterminated string',
  ],
  ['empty', '', 'invalid JSON: unexpected end of input'],
  [
    'a raw control character in a string',
    '{"a": "x\ny"}',
    'invalid JSON at line 1 column 9: Bad control character in string literal',
  ],
];
for (const [what, text, expected] of rows) {
  test(`parseJsonText: ${what}`, (t) => {
    const e = parseJsonText(text)._unsafeUnwrapErr();
    t.is(e.message, expected);
    for (const word of ['root', 'secret', 'hunter2']) t.false(e.message.includes(word));
  });
}

test('zod unknown keys are shown shortened and escaped', (t) => {
  const r = z.strictObject({ a: z.number() }).safeParse({ a: 1, [`k\n${'x'.repeat(500)}`]: 1 });
  t.false(r.success);
  const msg = issueMessage(r.error!.issues[0]!);
  t.false(msg.includes('\n'));
  t.true(msg.length < 120, msg);
  t.regex(msg, /^unknown key "k\\nxxx/);
});
