// vectors.md §2.6 (CopyFileRequest fields, HEAD column; top dir dir_mode S_IFDIR|0o750) and
// behaviour.md feature 4: ≤ 1 MiB chunks with offset, symlinks as symlinks, nothing outside the
// guest share dir.
import { create, toBinary } from '@bufbuild/protobuf';
import test from 'ava';
import { CopyFileRequestSchema } from '../../ts/gen/agent_pb.js';
import { guestPath } from '../../ts/paths.js';
import { fileCopyRequests, MAX_CHUNK_BYTES, treeCopyRequests, type CopyRequest, type TreeEntry } from '../../ts/plan/copy-requests.js';

const DEST = guestPath('/run/kata-containers/shared/containers/c1-0011223344556677-cm')._unsafeUnwrap();
const entry = (relPath: string, kind: TreeEntry['kind'], mode: number, extra: Partial<TreeEntry> = {}): TreeEntry => ({ relPath, kind, mode, uid: 0, gid: 0, size: 0, ...extra });
const fields = (r: CopyRequest) => [r.path, r.fileMode, r.dirMode, r.fileSize, r.offset] as const;

test('a single file mount (0644) is sent with file_mode 33188, dir_mode 0 and its bytes', (t) => {
  const [r, ...rest] = fileCopyRequests(DEST, entry('', 'file', 0o100644, { size: 2, uid: 1000, gid: 1000 }))._unsafeUnwrap();
  t.deepEqual(rest, []);
  t.deepEqual(fields(r!), [DEST, 33188, 0, 2, 0]);
  t.like(r, { uid: 1000, gid: 1000, data: { from: 'file', hostRelPath: '', length: 2 } });
});

const treeRows: [string, TreeEntry, number, number, number][] = [
  ['sub-dir 0755 (HEAD): st_mode for both modes', entry('sub', 'dir', 0o40755), 16877, 16877, 0],
  ['file in dir 0600 (HEAD): st_mode', entry('key', 'file', 0o100600, { size: 5 }), 33152, 0, 5],
  ['symlink ..data: S_IFLNK and the target length', entry('..data', 'symlink', 0o120777, { linkTarget: '..2025_01_01_00_00_00.123' }), 40960, 0, 25],
];
for (const [title, e, fileMode, dirMode, size] of treeRows) {
  test(`tree copy: ${title}`, (t) => {
    const plan = treeCopyRequests(DEST, [entry('', 'dir', 0o40755), e])._unsafeUnwrap();
    const r = plan.requests[1]!;
    t.deepEqual([r.fileMode, r.dirMode, r.fileSize, r.offset], [fileMode, dirMode, size, 0]);
    t.is<string, string>(r.path, `${DEST}/${e.relPath}`);
  });
}

test('the top directory (0755) gets file_mode 16877 and dir_mode 16872 (S_IFDIR|0o750)', (t) => {
  const [top] = treeCopyRequests(DEST, [entry('', 'dir', 0o40755, { uid: 1000, gid: 1000 })])._unsafeUnwrap().requests;
  t.deepEqual(fields(top!), [DEST, 16877, 16872, 0, 0]);
  t.like(top, { uid: 1000, gid: 1000, data: { from: 'none' } });
});

test('the top-directory request encodes as the golden bytes of vectors §2.6', (t) => {
  const [top] = treeCopyRequests(DEST, [entry('', 'dir', 0o40755, { uid: 1000, gid: 1000 })])._unsafeUnwrap().requests;
  const msg = create(CopyFileRequestSchema, { path: top!.path, fileMode: top!.fileMode, dirMode: top!.dirMode, uid: top!.uid, gid: top!.gid });
  t.true(Buffer.from(toBinary(CopyFileRequestSchema, msg)).toString('hex').endsWith('18ed830120e8830128e80730e807'));
});

test('a symlink carries its target text, never the file it points to', (t) => {
  const plan = treeCopyRequests(DEST, [entry('', 'dir', 0o40755), entry('key', 'symlink', 0o120777, { linkTarget: '/etc/shadow' })])._unsafeUnwrap();
  t.deepEqual(plan.requests[1]!.data, { from: 'link', text: '/etc/shadow' });
});

test('parents are sent before children, whatever the listing order', (t) => {
  const plan = treeCopyRequests(DEST, [
    entry('a/b/f', 'file', 0o100644, { size: 1 }),
    entry('a/b', 'dir', 0o40755),
    entry('', 'dir', 0o40755),
    entry('a', 'dir', 0o40755),
  ])._unsafeUnwrap();
  t.deepEqual(plan.requests.map((r) => r.path.slice(DEST.length)), ['', '/a', '/a/b', '/a/b/f']);
});

test('files above 1 MiB are sent in ≤ 1 MiB chunks with offsets and the full size', (t) => {
  const size = 2 * MAX_CHUNK_BYTES + 10;
  const reqs = fileCopyRequests(DEST, entry('', 'file', 0o100644, { size }))._unsafeUnwrap();
  t.deepEqual(reqs.map((r) => [r.offset, r.fileSize, r.data.from === 'file' ? r.data.length : -1]), [
    [0, size, MAX_CHUNK_BYTES],
    [MAX_CHUNK_BYTES, size, MAX_CHUNK_BYTES],
    [2 * MAX_CHUNK_BYTES, size, 10],
  ]);
});

test('an empty file is still created (one request of length 0)', (t) => {
  t.is(fileCopyRequests(DEST, entry('', 'file', 0o100644))._unsafeUnwrap().length, 1);
});

test('sockets, fifos and devices are skipped and listed', (t) => {
  const plan = treeCopyRequests(DEST, [entry('', 'dir', 0o40755), entry('sock', 'other', 0o140755)])._unsafeUnwrap();
  t.is(plan.requests.length, 1);
  t.deepEqual(plan.skipped, ['sock']);
});

const escapes: [string, string][] = [
  ['a .. component', 'a/../../../../etc/passwd'],
  ['an empty component', 'a//b'],
  ['a . component', './x'],
];
for (const [title, relPath] of escapes) {
  test(`a listing entry with ${title} is refused`, (t) => {
    t.true(treeCopyRequests(DEST, [entry('', 'dir', 0o40755), entry(relPath, 'file', 0o100644)]).isErr());
  });
}

test('a destination outside the guest share dir is refused', (t) => {
  const outside = guestPath('/run/kata-containers/sandbox/x')._unsafeUnwrap();
  t.true(fileCopyRequests(outside, entry('', 'file', 0o100644)).isErr());
  t.true(treeCopyRequests(outside, [entry('', 'dir', 0o40755)]).isErr());
  t.true(treeCopyRequests(guestPath('/run/kata-containers/shared/containers')._unsafeUnwrap(), [entry('', 'dir', 0o40755)]).isErr());
});
