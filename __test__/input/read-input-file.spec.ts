// Issue 17 #6: the one reader of files kata-ts is pointed at. Real FIFOs, devices, directories,
// symlinks and sparse files in a temp dir.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { readInputFile } from '../../ts/input/read-input-file.js';

const LIMIT = { maxBytes: 1024, limitName: 'TEST_LIMIT' };

function dir(t: ExecutionContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kata-ts-read-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('a regular file is read as UTF-8 text', (t) => {
  const f = path.join(dir(t), 'a.json');
  writeFileSync(f, '{"ä": 1}');
  t.is(readInputFile(f, LIMIT)._unsafeUnwrap(), '{"ä": 1}');
});

test('a FIFO without a writer is refused at once', (t) => {
  const f = path.join(dir(t), 'fifo');
  execFileSync('mkfifo', [f]);
  const started = performance.now();
  t.like(readInputFile(f, LIMIT)._unsafeUnwrapErr(), {
    kind: 'not-regular',
    what: 'cannot read: is a FIFO, not a regular file',
  });
  t.true(performance.now() - started < 1000);
});

test('devices and directories are refused', (t) => {
  t.like(readInputFile('/dev/zero', LIMIT)._unsafeUnwrapErr(), {
    kind: 'not-regular',
    what: 'cannot read: is a character device, not a regular file',
  });
  t.like(readInputFile(dir(t), LIMIT)._unsafeUnwrapErr(), {
    kind: 'not-regular',
    what: 'cannot read: is a directory, not a regular file',
  });
});

test('a file over the cap is refused by the named limit without reading it (a sparse 1 GiB file)', (t) => {
  const f = path.join(dir(t), 'big');
  writeFileSync(f, '');
  truncateSync(f, 1024 ** 3);
  t.like(readInputFile(f, LIMIT)._unsafeUnwrapErr(), {
    kind: 'too-large',
    what: 'cannot read: larger than 1024 bytes (TEST_LIMIT)',
  });
  const exact = path.join(path.dirname(f), 'exact');
  writeFileSync(exact, 'x'.repeat(1024));
  t.is(readInputFile(exact, LIMIT)._unsafeUnwrap().length, 1024);
});

test('a symlink is followed unless noFollow, which refuses it', (t) => {
  const d = dir(t);
  writeFileSync(path.join(d, 'target'), 'secret');
  symlinkSync(path.join(d, 'target'), path.join(d, 'link'));
  t.is(readInputFile(path.join(d, 'link'), LIMIT)._unsafeUnwrap(), 'secret');
  t.like(readInputFile(path.join(d, 'link'), { ...LIMIT, noFollow: true })._unsafeUnwrapErr(), {
    kind: 'symlink',
  });
  symlinkSync('/dev/zero', path.join(d, 'dev'));
  t.like(readInputFile(path.join(d, 'dev'), LIMIT)._unsafeUnwrapErr(), { kind: 'not-regular' });
});

test('missing files, missing parents and non-UTF-8 bytes are named, with no content', (t) => {
  const d = dir(t);
  t.like(readInputFile(path.join(d, 'nope'), LIMIT)._unsafeUnwrapErr(), {
    kind: 'missing',
    what: 'cannot read: no such file',
  });
  writeFileSync(path.join(d, 'file'), 'x');
  t.like(readInputFile(path.join(d, 'file', 'below'), LIMIT)._unsafeUnwrapErr(), {
    kind: 'missing',
  });
  writeFileSync(path.join(d, 'latin1'), Buffer.from([0x73, 0x65, 0x63, 0xff]));
  t.like(readInputFile(path.join(d, 'latin1'), LIMIT)._unsafeUnwrapErr(), {
    kind: 'not-utf8',
    what: 'cannot read: not UTF-8 text',
  });
});
