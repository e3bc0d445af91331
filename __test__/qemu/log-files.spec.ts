// QEMU's and the console's logs live in a run dir a rootless VMM user owns, who can plant a link
// or a FIFO at their names: the tail is read only from a regular file (never following a link,
// never blocking on a FIFO), and a log is never opened through a planted link. Real links and
// FIFOs in a temp dir; no VM is booted (the log is opened before QEMU would start).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { readLogTail } from '../../ts/input/read-log-tail.js';
import { logTail, Vm } from '../../ts/qemu/vm.js';

function dir(t: ExecutionContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kata-ts-logs-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('logTail reads only the last bytes of a regular log', (t) => {
  const d = dir(t);
  const log = path.join(d, 'qemu.log');
  writeFileSync(log, `${'x'.repeat(10_000)}\nqemu: last words\n`);
  t.is(logTail(log, 17), 'qemu: last words');
  t.is(logTail(log).length, 2000 - 1); // the trailing newline is trimmed
  t.is(logTail(path.join(d, 'missing.log')), '');
});

test('logTail does not follow a planted symlink: a short note, no content', (t) => {
  const d = dir(t);
  const secret = path.join(d, 'secret');
  writeFileSync(secret, 'root:$6$hash:20000::::::\n');
  const log = path.join(d, 'console.log');
  symlinkSync(secret, log);
  const tail = logTail(log);
  t.is(tail, 'log unavailable (a symbolic link)');
  t.notRegex(tail, /hash/);
});

test('logTail does not block on a planted FIFO', (t) => {
  const d = dir(t);
  const log = path.join(d, 'qemu.log');
  execFileSync('mkfifo', [log]);
  t.is(readLogTail(log, 100), 'log unavailable (not a regular file)');
});

test('Vm.spawn refuses a log planted as a symlink and writes nothing through it', async (t) => {
  const d = dir(t);
  const target = path.join(d, 'host-file');
  writeFileSync(target, 'untouched\n');
  const log = path.join(d, 'qemu.log');
  symlinkSync(target, log);
  const r = await Vm.spawn({
    binary: '/bin/echo',
    args: ['written through the link'],
    logPath: log,
    qmpSocket: path.join(d, 'qmp.sock'),
  });
  t.true(r.isErr());
  t.like(r._unsafeUnwrapErr(), { kind: 'vm-spawn' });
  t.regex(r._unsafeUnwrapErr().message, /symbolic link/);
  t.is(readFileSync(target, 'utf8'), 'untouched\n');
});

test('Vm.spawn refuses a log planted as a FIFO without blocking', async (t) => {
  const d = dir(t);
  const log = path.join(d, 'qemu.log');
  execFileSync('mkfifo', [log]);
  const r = await Vm.spawn({
    binary: '/bin/echo',
    args: [],
    logPath: log,
    qmpSocket: path.join(d, 'qmp.sock'),
  });
  t.true(r.isErr());
  t.like(r._unsafeUnwrapErr(), { kind: 'vm-spawn' });
});
