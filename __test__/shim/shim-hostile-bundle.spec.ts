// A bundle is hostile input (issue 17): whoever creates a pod controls config.json, and any name
// in the bundle may be a planted symlink or FIFO. The shim must neither hang on a FIFO
// config.json (`start` and `delete` read its annotations) nor write through a planted
// `rootfs-mounts.json` or `address` symlink into a host file. No VM: the sandbox's creation is
// made to fail (a missing configuration) after the write under test.
import { spawn, execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import test, { type ExecutionContext } from 'ava';
import { pino } from 'pino';
import { CreateTaskRequestSchema } from '../../ts/gen/containerd/task/v2/shim_pb.js';
import { MAX_SPEC_FILE_BYTES } from '../../ts/input/limits.js';
import { bundleAnnotations } from '../../ts/shim/address.js';
import { EventPublisher } from '../../ts/shim/events.js';
import { Pod } from '../../ts/shim/pod.js';
import { replaceFile } from '../../ts/input/replace-file.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** A temp dir (the bundle) and a sibling `outside` dir holding a victim file; removed after. */
function fixture(t: ExecutionContext): { bundle: string; victim: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-hostile-bundle-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bundle = path.join(dir, 'bundle');
  mkdirSync(bundle);
  mkdirSync(path.join(dir, 'outside'));
  const victim = path.join(dir, 'outside', 'victim');
  writeFileSync(victim, 'victim content\n', { mode: 0o644 });
  return { bundle, victim };
}

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** The real shim entry point as containerd runs it; killed (by its pid) at `timeoutMs`. */
function runShim(args: string[], timeoutMs = 20_000): Promise<Run> {
  const child = spawn(
    process.execPath,
    ['--import=tsx', path.join(repoRoot, 'ts/shim/run.ts'), ...args],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

const shimFlags = (bundle: string, id: string) => [
  '-namespace',
  'kata-ts-test',
  '-address',
  path.join(bundle, 'no-containerd.sock'),
  '-id',
  id,
  '-bundle',
  bundle,
];

test('shim start with a FIFO config.json: one error line, exit 2, no hang', async (t) => {
  const { bundle } = fixture(t);
  execFileSync('mkfifo', [path.join(bundle, 'config.json')]);
  const r = await runShim([...shimFlags(bundle, 'fifo-start'), 'start']);
  t.false(r.timedOut, 'start hung on the FIFO');
  t.is(r.code, 2);
  t.is(
    r.stderr,
    `kata-ts: ${path.join(bundle, 'config.json')}: cannot read: is a FIFO, not a regular file\n`,
  );
  t.is(r.stdout, '');
  t.false(lstatSync(path.join(bundle, 'config.json')).isFile(), 'the FIFO is left as it was');
});

test('shim delete with a FIFO config.json reports it and does not hang', async (t) => {
  const { bundle } = fixture(t);
  execFileSync('mkfifo', [path.join(bundle, 'config.json')]);
  const r = await runShim([...shimFlags(bundle, 'fifo-delete'), 'delete']);
  t.false(r.timedOut, 'delete hung on the FIFO');
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /delete fifo-delete: .*config\.json: cannot read: is a FIFO, not a regular file\n$/,
  );
  t.is(r.stderr.split('\n').length, 2, 'one line');
});

test('bundleAnnotations: a symlinked, oversized, invalid or valid config.json', (t) => {
  const { bundle, victim } = fixture(t);
  const file = path.join(bundle, 'config.json');
  writeFileSync(victim, JSON.stringify({ annotations: { secret: 'from the host' } }));
  symlinkSync(victim, file);
  const linked = bundleAnnotations(bundle);
  t.is(linked.isErr() && linked.error.kind, 'symlink');
  rmSync(file);
  writeFileSync(file, Buffer.alloc(MAX_SPEC_FILE_BYTES + 1, 0x20));
  const big = bundleAnnotations(bundle);
  t.is(big.isErr() && big.error.kind, 'too-large');
  writeFileSync(file, 'root:*:20200:0:99999:7:::\n');
  const bad = bundleAnnotations(bundle);
  t.is(bad.isErr() && bad.error.kind, 'invalid');
  t.false(bad.isErr() && bad.error.what.includes('root'), 'the content is not echoed');
  writeFileSync(file, JSON.stringify({ annotations: { a: 1 } }));
  t.is(bundleAnnotations(bundle).isErr(), true);
  writeFileSync(file, JSON.stringify({ ociVersion: '1.0.2', annotations: { a: 'b' } }));
  t.deepEqual(bundleAnnotations(bundle)._unsafeUnwrap(), { a: 'b' });
  rmSync(file);
  const missing = bundleAnnotations(bundle);
  t.is(missing.isErr() && missing.error.kind, 'missing');
});

test('Task create replaces a planted rootfs-mounts.json symlink; the target is untouched', async (t) => {
  const { bundle, victim } = fixture(t);
  const planted = path.join(bundle, 'rootfs-mounts.json');
  symlinkSync(victim, planted);
  const stateRoot = path.join(path.dirname(bundle), 'state');
  const log = pino({ level: 'silent' });
  const pod = new Pod(
    'planted',
    {
      configPath: path.join(path.dirname(bundle), 'missing-configuration.toml'),
      sandbox: { stateRoot },
    },
    new EventPublisher('', 'kata-ts-test', log),
    log,
  );
  const req = create(CreateTaskRequestSchema, {
    id: 'planted',
    bundle,
    rootfs: [{ type: 'bind', source: '/nonexistent-rootfs', options: ['rbind', 'ro'] }],
  });
  const r = await pod.create(req);
  t.true(r.isErr(), 'the sandbox cannot be created without a configuration');
  t.is(readFileSync(victim, 'utf8'), 'victim content\n', 'the link target was not written');
  t.is(lstatSync(victim).mode & 0o777, 0o644);
  const st = lstatSync(planted);
  t.true(st.isFile(), 'the symlink was replaced by a regular file');
  t.is(st.mode & 0o777, 0o600);
  t.true(readFileSync(planted, 'utf8').includes('/nonexistent-rootfs'));
  t.deepEqual(
    execFileSync('ls', ['-A', bundle], { encoding: 'utf8' }).trim().split('\n'),
    ['rootfs-mounts.json'],
    'no temp file left behind',
  );
});

test('replaceFile replaces a FIFO or a dangling link at the target, never opening it', (t) => {
  const { bundle, victim } = fixture(t);
  const fifo = path.join(bundle, 'address');
  execFileSync('mkfifo', [fifo]);
  t.true(replaceFile(fifo, 'unix:///x', 0o644).isOk());
  t.is(readFileSync(fifo, 'utf8'), 'unix:///x');
  t.is(lstatSync(fifo).mode & 0o777, 0o644);
  const dangling = path.join(bundle, 'dangling');
  const created = path.join(path.dirname(victim), 'created-outside');
  symlinkSync(created, dangling);
  t.true(replaceFile(dangling, 'x', 0o600).isOk());
  t.throws(() => readlinkSync(dangling), undefined, 'no longer a link');
  t.throws(() => lstatSync(created), undefined, 'nothing was created outside');
  const dir = path.join(bundle, 'dir');
  mkdirSync(dir);
  const failed = replaceFile(dir, 'x', 0o600);
  t.true(failed.isErr());
  t.deepEqual(
    execFileSync('ls', ['-A', bundle], { encoding: 'utf8' }).trim().split('\n').sort(),
    ['address', 'dangling', 'dir'],
    'the failed write left no temp file',
  );
});
