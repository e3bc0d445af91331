// vectors.md §2.3: virtio-fs watchable mounts (kata-types `is_watchable_mount`, `count_files`).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { countFiles } from '../../ts/host/gather-host-facts.js';
import type { PathFact } from '../../ts/plan/host-facts.js';
import { isWatchableMount } from '../../ts/plan/volumes-watchable.js';
import { containerSpec, dirFact, fileFact, hostFacts, planOf } from './plan-builders.js';

function tempDir(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-watch-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('count_files: 8 files within a limit of 8 → 8; a subdir of 8, a symlink to it and 2 files → -1', (t) => {
  const work = tempDir(t);
  const origin = path.join(work, 'origin_dir');
  mkdirSync(origin);
  for (let n = 0; n < 8; n++) writeFileSync(path.join(origin, `file${n}`), '');
  symlinkSync(origin, path.join(work, 'symlink_origin_dir'));
  for (let n = 0; n < 2; n++) writeFileSync(path.join(work, `file${n}`), '');
  t.is(countFiles(work, 8), -1);
  t.is(countFiles(origin, 8), 8);
});

test('count_files of a file is 1 and of a missing path 0', (t) => {
  const dir = tempDir(t);
  writeFileSync(path.join(dir, 'f'), '');
  t.is(countFiles(path.join(dir, 'f'), 8), 1);
  t.is(countFiles(path.join(dir, 'nope'), 8), 0);
});

const CM = '/tmp/x/kubernetes.io~configmap/amazing-dir-of-configs';
const rows: [string, string, PathFact, boolean][] = [
  ['an empty path', '', dirFact(''), false],
  [
    'a missing emptyDir',
    '/var/lib/kubelet/pods/5f08/volumes/kubernetes.io~empty-dir/foobar',
    { kind: 'missing', mode: 0, uid: 0, gid: 0, ino: 0 },
    false,
  ],
  [
    'a single secret file',
    '/tmp/x/kubernetes.io~secret/super-secret-thing',
    fileFact('/tmp/x/kubernetes.io~secret/super-secret-thing'),
    true,
  ],
  ['a configmap dir with no files', CM, dirFact(CM, { fileCount: 0 }), false],
  ['a configmap dir with 1 file', CM, dirFact(CM, { fileCount: 1 }), true],
  ['a configmap dir with 8 files', CM, dirFact(CM, { fileCount: 8 }), true],
  ['a configmap dir with 9 files', CM, dirFact(CM, { fileCount: -1 }), false],
  ['a non-k8s dir', '/srv/data', dirFact('/srv/data', { fileCount: 1 }), false],
];
for (const [title, source, fact, want] of rows) {
  test(`is_watchable_mount: ${title} → ${want}`, (t) => t.is(isWatchableMount(source, fact), want));
}

test('a small configmap over virtio-fs gets a watchable-bind Storage and the container binds the watchable path', (t) => {
  const src = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/cm';
  const p = planOf({
    host: hostFacts({ [src]: dirFact(src, { fileCount: 3 }) }),
    containers: [
      {
        id: 'c1',
        spec: containerSpec([
          { destination: '/etc/cfg', type: 'bind', source: src, options: ['rbind', 'ro'] },
        ]),
      },
    ],
  })._unsafeUnwrap();
  const req = p.containers[1]!.createContainer as any;
  const shared = p.containers[1]!.sharedFsBinds[0]!.guestPath;
  const name = shared.split('/').pop();
  const mountPoint = `/run/kata-containers/shared/containers/passthrough/watchable/${name}`;
  t.deepEqual(req.storages.at(-1), {
    driver: 'watchable-bind',
    source: shared,
    fstype: 'bind',
    options: ['rbind', 'ro'],
    mountPoint,
  });
  t.like(req.OCI.Mounts[0], { source: mountPoint, type: 'bind' });
});

test('the watchable mount point is made on the host in rw/passthrough/watchable (the guest sees the share read-only)', (t) => {
  const dir = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/cm';
  const file = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/token';
  const p = planOf({
    host: hostFacts({ [dir]: dirFact(dir, { fileCount: 3 }), [file]: fileFact(file) }),
    containers: [
      {
        id: 'c1',
        spec: containerSpec([
          { destination: '/etc/cfg', type: 'bind', source: dir, options: ['rbind', 'ro'] },
          { destination: '/etc/token', type: 'bind', source: file, options: ['rbind', 'ro'] },
        ]),
      },
    ],
  })._unsafeUnwrap();
  const c = p.containers[1]!;
  const names = c.sharedFsBinds.map((b) => b.guestPath.split('/').pop());
  t.deepEqual(
    c.sharedMountPoints.map((m) => [m.path.split('/rw/')[1], m.kind]),
    [
      [`passthrough/watchable/${names[0]}`, 'dir'],
      [`passthrough/watchable/${names[1]}`, 'file'],
    ],
  );
});
