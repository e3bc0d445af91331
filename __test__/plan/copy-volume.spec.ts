// Copy volumes under shared_fs = none (behaviour.md feature 4; vectors §2.2, §2.4, §2.5, §2.8 V8):
// what is copied, where to, and every input refused with an error naming the mount.
import test from 'ava';
import {
  blockFact,
  charFact,
  containerSpec,
  dirFact,
  fileFact,
  hostFacts,
  kataConfig,
  planMessages,
  planOf,
} from './plan-builders.js';
import type { PathFact } from '../../ts/plan/host-facts.js';

const KL = '/var/lib/kubelet';
const CM = `${KL}/pods/0b8e/volumes/kubernetes.io~configmap/cm1`;
const SECRET = `${KL}/pods/0b8e/volumes/kubernetes.io~secret/s1`;
const guest = (cid: string, name: string) =>
  new RegExp(`^/run/kata-containers/shared/containers/${cid}-[0-9a-f]{16}-${name}$`);
const bind = (source: string, destination: string, options = ['rbind', 'ro']) => ({
  destination,
  type: 'bind',
  source,
  options,
});

// shared_fs = none needs a rootfs that is not shared: guest pull.
const NONE = kataConfig({ sharedFs: 'none' }, { experimentalForceGuestPull: true });
const ANY = kataConfig(
  { sharedFs: 'none' },
  { allowAnyCopyDirectory: true, experimentalForceGuestPull: true },
);

function planCopy(mounts: unknown[], paths: Record<string, PathFact>, config = NONE) {
  return planOf({
    config,
    host: hostFacts(paths),
    containers: [{ id: 'c1', spec: containerSpec(mounts) }],
  });
}

test('a file mount is copied once to <cid>-<16 hex>-<basename(dest)> and bind-mounted from there (V8)', (t) => {
  const p = planCopy([bind('/var/lib/containerd/c1/resolv.conf', '/etc/resolv.conf')], {
    '/var/lib/containerd/c1/resolv.conf': fileFact('/var/lib/containerd/c1/resolv.conf'),
  })._unsafeUnwrap();
  const c = p.containers[1]!;
  t.is(c.copies.length, 1);
  t.like(c.copies[0], {
    source: '/var/lib/containerd/c1/resolv.conf',
    kind: 'file',
    watched: false,
  });
  t.regex(c.copies[0]!.guestPath, guest('c1', 'resolv.conf'));
  const mount = (c.createContainer as any).OCI.Mounts[0];
  t.deepEqual(mount, {
    destination: '/etc/resolv.conf',
    source: c.copies[0]!.guestPath,
    type: 'bind',
    options: ['rbind', 'ro'],
  });
  t.deepEqual(p.copyVolumes, [], 'files get no VolumeManager entry');
});

test('a configmap directory is copied, watched and kept in the VolumeManager', (t) => {
  const p = planCopy([bind(CM, '/etc/config')], { [CM]: dirFact(CM) })._unsafeUnwrap();
  const copy = p.containers[1]!.copies[0]!;
  t.like(copy, { source: CM, syncKey: CM, kind: 'dir', watched: true });
  t.regex(copy.guestPath, guest('c1', 'config'));
  t.deepEqual(p.copyVolumes, [
    {
      source: CM,
      refCount: 1,
      destinations: [{ containerId: 'c1', guestPath: copy.guestPath }],
      watched: true,
    },
  ]);
});

test('two containers sharing a configmap hold two references with distinct guest paths', (t) => {
  const host = hostFacts({ [CM]: dirFact(CM) });
  const p = planOf({
    config: NONE,
    host,
    containers: [
      { id: 'c1', spec: containerSpec([bind(CM, '/etc/config')]) },
      { id: 'c2', spec: containerSpec([bind(CM, '/etc/config')]) },
    ],
  })._unsafeUnwrap();
  t.is(p.copyVolumes.length, 1);
  t.is(p.copyVolumes[0]!.refCount, 2);
  t.deepEqual(
    p.copyVolumes[0]!.destinations.map((d) => d.containerId),
    ['c1', 'c2'],
  );
  t.not(p.containers[1]!.copies[0]!.guestPath, p.containers[2]!.copies[0]!.guestPath);
});

test('a kubelet root reached through a symlink is allowlisted by its canonical form', (t) => {
  const realCm = '/data/kubelet/pods/0b8e/volumes/kubernetes.io~configmap/cm1';
  const p = planCopy([bind(CM, '/etc/config')], {
    [CM]: dirFact(realCm),
    [KL]: dirFact('/data/kubelet'),
  })._unsafeUnwrap();
  t.like(p.containers[1]!.copies[0], { source: realCm, kind: 'dir', watched: true });
});

const refused: [string, unknown, Record<string, PathFact>, RegExp][] = [
  [
    'a non-allowlisted directory',
    bind('/srv/data', '/data'),
    { '/srv/data': dirFact('/srv/data') },
    /^mounts\[0\]: directory \/srv\/data is not a kubelet configmap.*allow_any_copy_directory/,
  ],
  [
    'an allowlist look-alike plugin (~secret-x)',
    bind(`${KL}/pods/u/volumes/kubernetes.io~secret-x/s`, '/s'),
    {
      [`${KL}/pods/u/volumes/kubernetes.io~secret-x/s`]: dirFact(
        `${KL}/pods/u/volumes/kubernetes.io~secret-x/s`,
      ),
    },
    /^mounts\[0\]: directory .* is not a kubelet/,
  ],
  [
    'a secret dir outside the kubelet root',
    bind('/srv/x/kubernetes.io~secret/s', '/s'),
    { '/srv/x/kubernetes.io~secret/s': dirFact('/srv/x/kubernetes.io~secret/s') },
    /^mounts\[0\]: directory/,
  ],
  [
    'a symlink from elsewhere into an allowlisted dir',
    bind('/srv/link', '/s'),
    { '/srv/link': dirFact(SECRET) },
    /^mounts\[0\]: directory \/srv\/link is not/,
  ],
  [
    'a volume that escapes through a symlink',
    bind(SECRET, '/s'),
    { [SECRET]: dirFact('/etc') },
    /^mounts\[0\]: source escapes its volume .*kubernetes.io~secret\/s1 .*resolves to \/etc/,
  ],
  [
    'a volume path that escapes through ..',
    bind(`${SECRET}/../../../../../../../etc`, '/s'),
    { [`${SECRET}/../../../../../../../etc`]: dirFact('/etc') },
    /^mounts\[0\]: source escapes its volume/,
  ],
  [
    'a file that escapes its volume through a symlink',
    bind(`${SECRET}/key`, '/key'),
    { [`${SECRET}/key`]: fileFact('/etc/shadow') },
    /^mounts\[0\]: source escapes its volume/,
  ],
  [
    'a volume that resolves into another volume',
    bind(SECRET, '/s'),
    { [SECRET]: dirFact(CM) },
    /^mounts\[0\]: source escapes its volume/,
  ],
  [
    'a missing source',
    bind('/nonexistent', '/x'),
    {},
    /^mounts\[0\]: failed to canonicalize file \/nonexistent/,
  ],
  [
    'a socket',
    bind('/run/app.sock', '/run/app.sock'),
    {
      '/run/app.sock': {
        kind: 'socket',
        mode: 0o140755,
        uid: 0,
        gid: 0,
        ino: 1,
        realpath: '/run/app.sock',
      },
    },
    /^mounts\[0\]: cannot copy a socket/,
  ],
  [
    'a destination of /',
    bind('/srv/f', '/'),
    { '/srv/f': fileFact('/srv/f') },
    /^mounts\[0\]\.destination: a mount destination of \/ is not allowed/,
  ],
];
for (const [title, mount, paths, want] of refused) {
  test(`shared_fs = none refuses ${title}`, (t) => {
    const messages = planMessages(planCopy([mount], paths));
    t.is(messages.length, 1, messages.join('\n'));
    t.regex(messages[0]!, want);
  });
}

test('allow_any_copy_directory copies any directory, unwatched', (t) => {
  const p = planCopy(
    [bind('/srv/data', '/data')],
    { '/srv/data': dirFact('/srv/data') },
    ANY,
  )._unsafeUnwrap();
  t.like(p.containers[1]!.copies[0], { source: '/srv/data', kind: 'dir', watched: false });
});

test('allow_any_copy_directory still refuses a volume escaping through ..', (t) => {
  const raw = `${SECRET}/../../../../../../../etc`;
  t.regex(
    planMessages(planCopy([bind(raw, '/s')], { [raw]: dirFact('/etc') }, ANY))[0]!,
    /escapes its volume/,
  );
});

test('every bad mount is reported, each naming its index', (t) => {
  const messages = planMessages(
    planCopy([bind('/a', '/a'), bind('/srv/ok', '/ok'), bind('/b', '/b')], {
      '/srv/ok': fileFact('/srv/ok'),
    }),
  );
  t.deepEqual(
    messages.map((m) => m.split(':')[0]),
    ['mounts[0]', 'mounts[2]'],
  );
});

// vectors §2.4: what is not shared (system mounts, host devices) passes through as a default mount.
const passthrough: [string, unknown, Record<string, PathFact>][] = [
  ['/sys', bind('/sys', '/host/sys'), {}],
  ['/proc', bind('/proc', '/host/proc'), {}],
  ['/sys/fs/cgroup', bind('/sys/fs/cgroup', '/sys/fs/cgroup'), {}],
  ['/proc/cgroups', bind('/proc/cgroups', '/x'), {}],
  ['a path containing /sys/ (reference substring rule)', bind('/foo/sys/bar', '/x'), {}],
  [
    'a char device destination under /dev',
    bind('/dev/null', '/dev/null'),
    { '/dev/null': charFact('/dev/null') },
  ],
  ['the /dev destination', bind('/dev', '/dev'), {}],
];
for (const [title, mount, paths] of passthrough) {
  test(`a bind of ${title} is not copied but passed through unchanged`, (t) => {
    const p = planCopy([mount], paths)._unsafeUnwrap();
    t.deepEqual(
      p.containers[1]!.volumes.map((v) => v.kind),
      ['default'],
    );
    t.deepEqual(p.containers[1]!.copies, []);
  });
}

const copiedAnyway: [string, string, Record<string, PathFact>][] = [
  ['/root (not a system mount)', '/root', { '/root': dirFact('/root') }],
  ['/system (not a system mount)', '/system', { '/system': fileFact('/system') }],
];
for (const [title, source, paths] of copiedAnyway) {
  test(`a bind of ${title} goes to the copy handler`, (t) => {
    const r = planCopy([bind(source, '/x')], paths, ANY);
    t.deepEqual(
      r._unsafeUnwrap().containers[1]!.volumes.map((v) => v.kind),
      ['copy'],
    );
  });
}

test('/dev/<regular file> and a missing /dev/<x> destination are not host devices', (t) => {
  const paths = {
    '/srv/f': fileFact('/srv/f'),
    '/dev/termination-log': fileFact('/dev/termination-log'),
  };
  const p = planCopy(
    [bind('/srv/f', '/dev/termination-log'), bind('/srv/f', '/dev/xyz')],
    paths,
  )._unsafeUnwrap();
  t.deepEqual(
    p.containers[1]!.volumes.map((v) => v.kind),
    ['copy', 'copy'],
  );
});

test('a block device bind is a block volume, not a copy', (t) => {
  const p = planCopy([bind('/dev/sdb', '/data', ['rbind'])], {
    '/dev/sdb': blockFact('/dev/sdb', 8, 16),
  })._unsafeUnwrap();
  t.deepEqual(
    p.containers[1]!.volumes.map((v) => v.kind),
    ['block'],
  );
});
