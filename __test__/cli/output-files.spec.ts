// `kata-ts create --stdout F --stderr G`: what a container prints can be secret, so new output
// files are 0600 (0640 with --output-group), whatever the umask; an unprivileged user cannot
// read them; a link or a FIFO planted at the name is refused with one line, nothing written
// through it. Runs the real CLI (its `create` fails later, at the missing config, after the
// files were opened) and reads back as uid 65534 with setpriv.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openOutputFile, resolveGroup } from '../../ts/cli/output-file.js';
import { gated, needs } from '../harness/prereq.js';
import { exampleBundle, repoRoot } from './cli-harness.js';

const test = gated(needs.root());

function tempDir(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-output-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** `kata-ts create` under `umask 000` (the worst case), as its own process. */
function create(dir: string, extra: string[]): { status: number | null; stderr: string } {
  const cli = `${process.execPath} --import=tsx ${path.join(repoRoot, 'ts/cli/run.ts')}`;
  const args = [
    'create',
    '--config',
    path.join(dir, 'missing.toml'),
    '--bundle',
    exampleBundle,
    '--state-root',
    path.join(dir, 'state'),
    ...extra,
    'sb-out',
  ];
  const r = spawnSync('sh', ['-c', `umask 000; exec ${cli} "$@"`, 'sh', ...args], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, KATA_TS_LOG: 'silent' },
    timeout: 60_000,
  });
  return { status: r.status, stderr: r.stderr };
}

/** Whether uid/gid `ids` can read `file` (setpriv drops to them, no supplementary groups). */
function readableAs(file: string, uid: number, gid: number): boolean {
  return (
    spawnSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', 'cat', file], {
      stdio: 'ignore',
    }).status === 0
  );
}

test.serial(
  'create makes new --stdout/--stderr files 0600 under umask 000; nobody else can read them',
  (t) => {
    const dir = tempDir(t);
    execFileSync('chmod', ['0755', dir]);
    const out = path.join(dir, 'out.log');
    const err = path.join(dir, 'err.log');
    const r = create(dir, ['--stdout', out, '--stderr', err]);
    t.not(r.status, 0, 'the create itself fails (no config), after opening the files');
    for (const f of [out, err]) {
      t.is(statSync(f).mode & 0o7777, 0o600, f);
      writeFileSync(f, 'secret\n', { flag: 'a' });
      t.false(readableAs(f, 65534, 65534), `uid 65534 reads ${f}`);
    }
  },
);

test.serial(
  '--output-group makes them 0640 owned by that group: its members read, others do not',
  (t) => {
    const dir = tempDir(t);
    execFileSync('chmod', ['0755', dir]);
    const out = path.join(dir, 'out.log');
    create(dir, ['--stdout', out, '--output-group', '4242']);
    const st = statSync(out);
    t.is(st.mode & 0o7777, 0o640);
    t.is(st.gid, 4242);
    writeFileSync(out, 'for the group\n', { flag: 'a' });
    t.true(readableAs(out, 65534, 4242), 'a member of the group reads it');
    t.false(readableAs(out, 65534, 65534), 'anyone else does not');
  },
);

test.serial(
  'a symlink or FIFO planted at --stdout is refused with one line; its target is untouched',
  (t) => {
    const dir = tempDir(t);
    const victim = path.join(dir, 'victim');
    writeFileSync(victim, 'original\n', { mode: 0o644 });
    const link = path.join(dir, 'link.log');
    symlinkSync(victim, link);
    const r = create(dir, ['--stdout', link]);
    t.is(r.status, 2);
    t.is(r.stderr, `kata-ts: --stdout "${link}": is a symbolic link\n`);
    t.is(readFileSync(victim, 'utf8'), 'original\n');
    t.is(statSync(victim).mode & 0o7777, 0o644);
    const fifo = path.join(dir, 'fifo.log');
    execFileSync('mkfifo', [fifo]);
    const f = create(dir, ['--stderr', fifo]);
    t.is(f.status, 2);
    t.is(f.stderr, `kata-ts: --stderr "${fifo}": is a FIFO without a reader\n`);
  },
);

test('an existing regular file is appended to and keeps its mode', (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'existing.log');
  writeFileSync(file, 'before\n', { mode: 0o600 });
  const fd = openOutputFile('--stdout', file)._unsafeUnwrap();
  writeFileSync(fd, 'after\n');
  closeSync(fd);
  t.is(readFileSync(file, 'utf8'), 'before\nafter\n');
  t.is(statSync(file).mode & 0o7777, 0o600);
  t.true(existsSync(file));
});

test('--output-group takes a gid or a name from the group file', (t) => {
  const dir = tempDir(t);
  const groups = path.join(dir, 'group');
  writeFileSync(groups, 'root:x:0:\nkata-logs:x:4243:alice\n');
  t.is(resolveGroup('4242', groups)._unsafeUnwrap(), 4242);
  t.is(resolveGroup('kata-logs', groups)._unsafeUnwrap(), 4243);
  t.is(resolveGroup('nope\n', groups)._unsafeUnwrapErr(), '--output-group: no group "nope\\n"');
});
