// A planned copy step carried out against our agent (on the host, with --root): the guest tree
// matches the host tree — file contents (a multi-chunk file included), directories, kubelet's
// `..data` symlinks as symlinks, permissions — and a missing source is an error naming it.
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { copyStepToGuest } from '../../ts/guest/copy-to-guest.js';
import { guestPath } from '../../ts/paths.js';
import type { CopyStep } from '../../ts/plan/copy-volume.js';
import { connect, startAgent } from '../agent/agent-harness.js';

const GUEST = '/run/kata-containers/shared/containers';

function hostDir(t: ExecutionContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-copy-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const step = (hostPath: string, dest: string, kind: CopyStep['kind']): CopyStep => ({ hostPath, guestPath: guestPath(dest)._unsafeUnwrap(), kind, watched: false });

test('a configmap-style tree lands as the same tree: contents, modes, nested dirs, ..data symlinks, a 1.5 MiB file in two chunks', async (t) => {
  const src = path.join(hostDir(t), 'cfg');
  const big = randomBytes((3 << 20) / 2);
  mkdirSync(path.join(src, '..2026_11_28/nested'), { recursive: true });
  writeFileSync(path.join(src, '..2026_11_28/key'), 'value\n', { mode: 0o640 });
  writeFileSync(path.join(src, '..2026_11_28/nested/big.bin'), big);
  symlinkSync('..2026_11_28', path.join(src, '..data'));
  symlinkSync('..data/key', path.join(src, 'key'));
  const agent = startAgent(t);
  const client = await connect(t, agent);
  const dest = `${GUEST}/sb-0000000000000001-config`;

  const summary = (await copyStepToGuest(client, step(src, dest, 'dir')))._unsafeUnwrap();

  const out = path.join(agent.root, dest);
  t.is(readFileSync(path.join(out, 'key'), 'utf8'), 'value\n', 'key resolves through ..data');
  t.is(readlinkSync(path.join(out, '..data')), '..2026_11_28');
  t.is(readlinkSync(path.join(out, 'key')), '..data/key');
  t.is(lstatSync(path.join(out, '..2026_11_28/key')).mode & 0o777, 0o640);
  t.deepEqual(readFileSync(path.join(out, '..2026_11_28/nested/big.bin')), big);
  t.is(summary.bytes, big.length + 'value\n'.length);
  // root + 2 dirs + key + big.bin in 2 chunks + 2 symlinks
  t.is(summary.requests, 8);
  t.deepEqual(summary.skipped, []);
});

test('a file step copies the single file to its destination', async (t) => {
  const file = path.join(hostDir(t), 'hosts');
  writeFileSync(file, '127.0.0.1 localhost\n');
  const agent = startAgent(t);
  const client = await connect(t, agent);
  const dest = `${GUEST}/sb-0000000000000002-hosts`;
  (await copyStepToGuest(client, step(file, dest, 'file')))._unsafeUnwrap();
  t.is(readFileSync(path.join(agent.root, dest), 'utf8'), '127.0.0.1 localhost\n');
});

test('a missing host source fails with copy-source naming the path, before any request', async (t) => {
  const missing = path.join(hostDir(t), 'gone');
  const agent = startAgent(t);
  const client = await connect(t, agent);
  const e = (await copyStepToGuest(client, step(missing, `${GUEST}/x`, 'dir')))._unsafeUnwrapErr();
  t.is(e.kind, 'copy-source');
  t.true('hostPath' in e && e.hostPath === missing);
  t.regex(e.message, /ENOENT/);
});
