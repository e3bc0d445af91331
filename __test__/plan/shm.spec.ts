// vectors.md §3: sandbox shm size and Storage, container /dev/shm, ephemeral (memory-backed) volumes.
import test from 'ava';
import {
  containerSpec,
  dirFact,
  hostFacts,
  kataConfig,
  ociSpec,
  planMessages,
  planOf,
} from './plan-builders.js';
import type { PathFact } from '../../ts/plan/host-facts.js';

const MiB = 1024 * 1024;
const shmBind = (source: string) => ({
  destination: '/dev/shm',
  type: 'bind',
  source,
  options: ['rbind'],
});
const sandboxWith = (mounts: unknown[]) => ociSpec((s) => (s.mounts = mounts));

const sizes: [string, unknown[], Record<string, PathFact>, number][] = [
  ['no /dev/shm mount → 64 MiB', [], {}, 67108864],
  [
    'a bind of a 256 MiB tmpfs → its statfs size',
    [shmBind('/var/lib/docker/containers/x/mounts/shm')],
    {
      '/var/lib/docker/containers/x/mounts/shm': dirFact(
        '/var/lib/docker/containers/x/mounts/shm',
        { fsType: 'tmpfs', fsSizeBytes: 256 * MiB },
      ),
    },
    268435456,
  ],
  [
    'a bind of /dev/shm itself → 64 MiB',
    [shmBind('/dev/shm')],
    { '/dev/shm': dirFact('/dev/shm', { fsType: 'tmpfs', fsSizeBytes: 8 * 1024 * MiB }) },
    67108864,
  ],
  [
    'a tmpfs-typed /dev/shm mount → 64 MiB',
    [{ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['size=65536k'] }],
    {},
    67108864,
  ],
];
for (const [title, mounts, paths, want] of sizes) {
  test(`sandbox shm size: ${title}`, (t) => {
    const p = planOf({
      sandbox: { id: 'sb', spec: sandboxWith(mounts) },
      host: hostFacts(paths),
    })._unsafeUnwrap();
    t.is(p.shmSizeBytes, want);
  });
}

test('the sandbox shm Storage is the last CreateSandboxRequest storage, exactly as the reference', (t) => {
  const p = planOf({})._unsafeUnwrap();
  const storages = (p.createSandbox as any).storages;
  t.deepEqual(storages.at(-1), {
    driver: 'ephemeral',
    source: 'shm',
    fstype: 'tmpfs',
    options: ['noexec', 'nosuid', 'nodev', 'mode=1777', 'size=67108864'],
    mountPoint: '/run/kata-containers/sandbox/shm',
  });
});

test('container /dev/shm of type bind becomes an rbind of the sandbox shm, without storage', (t) => {
  const p = planOf({
    containers: [{ id: 'c1', spec: containerSpec([shmBind('/run/containerd/sb/shm')]) }],
  })._unsafeUnwrap();
  const req = p.containers[1]!.createContainer as any;
  t.deepEqual(req.OCI.Mounts, [
    {
      destination: '/dev/shm',
      type: 'bind',
      source: '/run/kata-containers/sandbox/shm',
      options: ['rbind'],
    },
  ]);
  t.is(req.storages, undefined);
});

const EMPTY_DIR = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/cache';
const ephemeral: [string, unknown, Record<string, PathFact>, string[]][] = [
  [
    'type ephemeral, source gid 0',
    { destination: '/cache', type: 'ephemeral', source: '/tmp/vol1' },
    { '/tmp/vol1': dirFact('/tmp/vol1') },
    [],
  ],
  [
    'type ephemeral, source gid 2000 → fsgid',
    { destination: '/cache', type: 'ephemeral', source: '/tmp/vol1' },
    { '/tmp/vol1': dirFact('/tmp/vol1', { gid: 2000 }) },
    ['fsgid=2000'],
  ],
  [
    'a memory-backed emptyDir bind with a size limit → size= (unlike the reference)',
    { destination: '/cache', type: 'bind', source: EMPTY_DIR, options: ['rbind'] },
    { [EMPTY_DIR]: dirFact(EMPTY_DIR, { gid: 2000, fsType: 'tmpfs', fsSizeBytes: 128 * MiB }) },
    ['fsgid=2000', 'size=134217728'],
  ],
  [
    '/dev/shm of type ephemeral is an ephemeral volume, not shm',
    { destination: '/dev/shm', type: 'ephemeral', source: '/tmp/vol1' },
    { '/tmp/vol1': dirFact('/tmp/vol1') },
    [],
  ],
];
for (const [title, mount, paths, options] of ephemeral) {
  test(`ephemeral volume: ${title}`, (t) => {
    const p = planOf({
      host: hostFacts(paths),
      containers: [{ id: 'c1', spec: containerSpec([mount]) }],
    })._unsafeUnwrap();
    const req = p.containers[1]!.createContainer as any;
    const name = (mount as { source: string }).source.split('/').pop();
    const mountPoint = `/run/kata-containers/sandbox/ephemeral/${name}`;
    t.deepEqual(req.storages.at(-1), {
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      ...(options.length ? { options } : {}),
      mountPoint,
    });
    t.like(req.OCI.Mounts[0], { source: mountPoint, type: 'bind' });
    t.deepEqual(
      p.containers[1]!.volumes.map((v) => v.kind),
      ['ephemeral'],
    );
  });
}

test('an emptyDir on disk (not tmpfs) is a shared-fs volume, not ephemeral', (t) => {
  const p = planOf({
    host: hostFacts({ [EMPTY_DIR]: dirFact(EMPTY_DIR, { fsType: 'ext4' }) }),
    containers: [
      {
        id: 'c1',
        spec: containerSpec([{ destination: '/cache', type: 'bind', source: EMPTY_DIR }]),
      },
    ],
  });
  t.deepEqual(
    p._unsafeUnwrap().containers[1]!.volumes.map((v) => v.kind),
    ['shared-fs'],
  );
});

test('an ephemeral volume without source is refused naming the mount', (t) => {
  const msgs = planMessages(
    planOf({
      containers: [
        { id: 'c1', spec: containerSpec([{ destination: '/cache', type: 'ephemeral' }]) },
      ],
    }),
  );
  t.deepEqual(msgs, ['mounts[0]: got a wrong volume without source: /cache']);
});

test('guest shm and ephemeral paths are never rootless-prefixed', (t) => {
  const p = planOf({
    config: kataConfig({ rootless: true }),
    host: { ...hostFacts({ '/tmp/vol1': dirFact('/tmp/vol1') }), rootlessDir: '/run/user/1000' },
    containers: [
      {
        id: 'c1',
        spec: containerSpec([{ destination: '/c', type: 'ephemeral', source: '/tmp/vol1' }]),
      },
    ],
  })._unsafeUnwrap();
  t.is<string | null, string | null>(p.rootlessDir, '/run/user/1000');
  t.true(JSON.stringify(p.createSandbox).includes('"/run/kata-containers/sandbox/shm"'));
  t.is(
    (p.containers[1]!.createContainer as any).storages.at(-1).mountPoint,
    '/run/kata-containers/sandbox/ephemeral/vol1',
  );
});
