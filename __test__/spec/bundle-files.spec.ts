// A bundle's config.json and rootfs-mounts.json are read with O_NOFOLLOW and their named caps
// (issue 17 #6): whoever made the bundle chose the names inside it.
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { fileURLToPath } from 'node:url';
import { formatPlanError } from '../../ts/errors.js';
import { MAX_ROOTFS_MOUNTS_FILE_BYTES, MAX_SPEC_FILE_BYTES } from '../../ts/input/limits.js';
import { readOciBundle } from '../../ts/spec/oci-spec.js';
import { readRootfsMounts } from '../../ts/spec/rootfs-mounts-file.js';

const EXAMPLE = readFileSync(
  fileURLToPath(new URL('../../examples/bundle/config.json', import.meta.url)),
  'utf8',
);

function bundle(t: ExecutionContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kata-ts-bundle-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  mkdirSync(path.join(d, 'rootfs'));
  return d;
}

test('config.json up to MAX_SPEC_FILE_BYTES is read; over it is refused by name', async (t) => {
  const b = bundle(t);
  const file = path.join(b, 'config.json');
  writeFileSync(file, EXAMPLE.padEnd(MAX_SPEC_FILE_BYTES, ' '));
  t.is((await readOciBundle(b))._unsafeUnwrap().bundleDir, b);
  truncateSync(file, MAX_SPEC_FILE_BYTES + 1);
  t.deepEqual(formatPlanError((await readOciBundle(b))._unsafeUnwrapErr()), [
    `kata-ts: ${file}: config.json: cannot read: larger than ${MAX_SPEC_FILE_BYTES} bytes (MAX_SPEC_FILE_BYTES)`,
  ]);
});

test('rootfs-mounts.json: absent is none, a symlink is refused, over MAX_ROOTFS_MOUNTS_FILE_BYTES is refused', (t) => {
  const b = bundle(t);
  t.deepEqual(readRootfsMounts(b)._unsafeUnwrap(), []);
  const target = path.join(path.dirname(b), `${path.basename(b)}-elsewhere.json`);
  writeFileSync(target, '[]');
  t.teardown(() => rmSync(target, { force: true }));
  symlinkSync(target, path.join(b, 'rootfs-mounts.json'));
  t.regex(
    formatPlanError(readRootfsMounts(b)._unsafeUnwrapErr())[0]!,
    /rootfs-mounts\.json: cannot read: is a symbolic link/,
  );
  rmSync(path.join(b, 'rootfs-mounts.json'));
  writeFileSync(path.join(b, 'rootfs-mounts.json'), '');
  truncateSync(path.join(b, 'rootfs-mounts.json'), MAX_ROOTFS_MOUNTS_FILE_BYTES + 1);
  t.regex(
    formatPlanError(readRootfsMounts(b)._unsafeUnwrapErr())[0]!,
    /larger than \d+ bytes \(MAX_ROOTFS_MOUNTS_FILE_BYTES\)$/,
  );
});

test('rootfs-mounts.json errors name the entry and never quote the file', (t) => {
  const b = bundle(t);
  writeFileSync(
    path.join(b, 'rootfs-mounts.json'),
    JSON.stringify([{ type: 'overlay', source: 'x', options: [], ['secret\nkey'.repeat(20)]: 1 }]),
  );
  const lines = formatPlanError(readRootfsMounts(b)._unsafeUnwrapErr());
  t.is(lines.length, 1);
  t.regex(lines[0]!, /rootfs-mounts\[0\]: unknown key "secret\\nkey/);
  t.true(lines[0]!.length < 250, lines[0]);
  writeFileSync(path.join(b, 'rootfs-mounts.json'), 'password=hunter2');
  t.deepEqual(formatPlanError(readRootfsMounts(b)._unsafeUnwrapErr()), [
    `kata-ts: ${b}/rootfs-mounts.json: json: invalid JSON`,
  ]);
});
