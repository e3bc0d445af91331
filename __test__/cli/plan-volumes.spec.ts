// `kata-ts plan` with volumes and rootfs mounts on a real filesystem: host facts are gathered from
// temp dirs and symlinks, so allowlist look-alikes and escapes are tested as the host shows them.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { HOST_FACTS, runCli, Scratch } from './cli-harness.js';

interface Fixture {
  s: Scratch;
  kubelet: string;
  configmap: string;
  secret: string;
  run: (
    containerPatch: (spec: Record<string, any>) => void,
    opts?: { rootfsMounts?: unknown; config?: [string, string, string][] },
  ) => Promise<{ code: number; stdout: string; stderr: string }>;
}

function fixture(t: { teardown: (fn: () => void) => void }): Fixture {
  const s = new Scratch();
  t.teardown(() => s.remove());
  const kubelet = path.join(s.dir, 'kubelet');
  const volumes = path.join(kubelet, 'pods', '0b8e-uid', 'volumes');
  const configmap = path.join(volumes, 'kubernetes.io~configmap', 'cm1');
  const secret = path.join(volumes, 'kubernetes.io~secret', 's1');
  for (const d of [configmap, secret]) mkdirSync(d, { recursive: true });
  writeFileSync(path.join(configmap, 'key'), 'value');
  const facts = s.file('facts.json', HOST_FACTS);
  const run: Fixture['run'] = async (patch, opts = {}) => {
    const config = s.config([
      ['hypervisor.qemu', 'shared_fs', '"none"'],
      ['runtime', 'experimental_force_guest_pull', 'true'],
      ['runtime', 'kubelet_root_dir', JSON.stringify(kubelet)],
      ...(opts.config ?? []),
    ]);
    const sandbox = s.bundle('sb', (spec) => (spec.mounts = []));
    const c1 = s.bundle('c1', (spec) => {
      spec.annotations = {
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.sandbox-id': 'sb',
        'io.kubernetes.cri.image-name': 'busybox',
      };
      spec.mounts = [];
      patch(spec);
    });
    if (opts.rootfsMounts !== undefined)
      writeFileSync(path.join(c1, 'rootfs-mounts.json'), JSON.stringify(opts.rootfsMounts));
    return runCli([
      'plan',
      '--host-facts',
      facts,
      '--config',
      config,
      '--sandbox',
      `sb=${sandbox}`,
      '--container',
      `c1=${c1}`,
    ]);
  };
  return { s, kubelet, configmap, secret, run };
}

const bind = (source: string, destination: string) => ({
  destination,
  type: 'bind',
  source,
  options: ['rbind', 'ro'],
});

test('a configmap directory and a file are planned as copies with source, syncKey, guestPath, kind and watched', async (t) => {
  const f = fixture(t);
  const file = f.s.file('resolv.conf', 'nameserver 1.1.1.1\n');
  const r = await f.run(
    (spec) => (spec.mounts = [bind(f.configmap, '/etc/config'), bind(file, '/etc/resolv.conf')]),
  );
  t.is(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout);
  const copies = p.containers[1].copies;
  t.deepEqual(
    copies.map((c: any) => Object.keys(c)),
    [
      ['source', 'syncKey', 'guestPath', 'kind', 'watched'],
      ['source', 'syncKey', 'guestPath', 'kind', 'watched'],
    ],
  );
  t.like(copies[0], { source: f.configmap, kind: 'dir', watched: true });
  t.like(copies[1], { source: file, kind: 'file', watched: false });
  t.regex(
    copies[0].guestPath,
    /^\/run\/kata-containers\/shared\/containers\/c1-[0-9a-f]{16}-config$/,
  );
  t.regex(
    copies[1].guestPath,
    /^\/run\/kata-containers\/shared\/containers\/c1-[0-9a-f]{16}-resolv\.conf$/,
  );
  t.deepEqual(
    p.containers[1].createContainer.OCI.Mounts.map((m: any) => m.source),
    copies.map((c: any) => c.guestPath),
  );
  t.truthy(p.createSandbox);
});

const refusals: [string, (f: Fixture) => string, RegExp][] = [
  [
    'an allowlist look-alike (kubernetes.io~secret-x)',
    (f) => {
      const d = path.join(f.kubelet, 'pods', '0b8e-uid', 'volumes', 'kubernetes.io~secret-x', 's');
      mkdirSync(d, { recursive: true });
      return d;
    },
    /mounts\[0\]: directory .* is not a kubelet configmap, secret/,
  ],
  [
    'a directory symlinked into an allowlisted dir from elsewhere',
    (f) => {
      const link = path.join(f.s.dir, 'elsewhere');
      symlinkSync(f.secret, link);
      return link;
    },
    /mounts\[0\]: directory .*elsewhere is not a kubelet/,
  ],
  [
    'a volume symlinked out of the kubelet root',
    (f) => {
      const outside = path.join(f.s.dir, 'outside');
      mkdirSync(outside);
      const link = path.join(path.dirname(f.secret), 's2');
      symlinkSync(outside, link);
      return link;
    },
    /mounts\[0\]: source escapes its volume .*kubernetes\.io~secret\/s2/,
  ],
  [
    'a .. trick out of a volume',
    (f) => `${f.secret}/../../../../../..`,
    /mounts\[0\]: source escapes its volume/,
  ],
  [
    'a plain host directory',
    (f) => {
      const d = path.join(f.s.dir, 'data');
      mkdirSync(d);
      return d;
    },
    /mounts\[0\]: directory .* allow_any_copy_directory/,
  ],
];
for (const [title, make, want] of refusals) {
  test(`shared_fs = none: ${title} exits 2 naming the mount`, async (t) => {
    const f = fixture(t);
    const source = make(f);
    const r = await f.run((spec) => (spec.mounts = [bind(source, '/data')]));
    t.is(r.code, 2, r.stdout);
    t.is(r.stdout, '');
    t.regex(r.stderr, /^kata-ts: .*c1\/config\.json: /);
    t.regex(r.stderr, want);
  });
}

test('allow_any_copy_directory copies a plain host directory, unwatched', async (t) => {
  const f = fixture(t);
  const d = path.join(f.s.dir, 'data');
  mkdirSync(d);
  const r = await f.run((spec) => (spec.mounts = [bind(d, '/data')]), {
    config: [['runtime', 'allow_any_copy_directory', 'true']],
  });
  t.is(r.code, 0, r.stderr);
  t.like(JSON.parse(r.stdout).containers[1].copies[0], {
    source: d,
    kind: 'dir',
    watched: false,
  });
});

test('a mount destination of / exits 2 naming the mount', async (t) => {
  const f = fixture(t);
  const r = await f.run((spec) => (spec.mounts = [bind(f.configmap, '/')]));
  t.is(r.code, 2);
  t.regex(r.stderr, /mounts\[0\]\.destination: a mount destination of \/ is not allowed/);
});

test('a blockfile rootfs (regular file, loop) from rootfs-mounts.json is hot-plugged as the file', async (t) => {
  const f = fixture(t);
  const image = f.s.file('snapshot-12', '');
  const r = await f.run(() => {}, {
    rootfsMounts: [{ type: 'xfs', source: image, options: ['loop', 'rw'] }],
    config: [
      ['hypervisor.qemu', 'shared_fs', '"virtio-fs"'],
      ['runtime', 'experimental_force_guest_pull', 'false'],
    ],
  });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout).containers[1];
  t.like(c.rootfs, {
    kind: 'block',
    guestPath: '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
  });
  t.is(c.blockDevices[0].pathOnHost, image);
  t.like(c.createContainer.storages[0], {
    driver: 'scsi',
    fstype: 'xfs',
    options: ['rw', 'nouuid'],
  });
});

test('an overlay rootfs from rootfs-mounts.json is shared over virtio-fs', async (t) => {
  const f = fixture(t);
  const overlay = {
    type: 'overlay',
    source: 'overlay',
    options: ['lowerdir=/l', 'upperdir=/u', 'workdir=/w'],
  };
  const r = await f.run(() => {}, {
    rootfsMounts: [overlay],
    config: [
      ['hypervisor.qemu', 'shared_fs', '"virtio-fs"'],
      ['runtime', 'experimental_force_guest_pull', 'false'],
    ],
  });
  t.is(r.code, 0, r.stderr);
  const c = JSON.parse(r.stdout).containers[1];
  t.like(c.rootfs, { kind: 'shared-fs', hostMount: { type: 'overlay' } });
  t.is(
    c.createContainer.OCI.Root.Path,
    '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
  );
});

const badRootfs: [string, unknown, RegExp][] = [
  [
    'a virtual volume with bad base64',
    [{ type: '', source: '', options: ['io.katacontainers.volume=%%%'] }],
    /c1\/rootfs-mounts\.json: rootfs-mounts\[0\]: Failed to decode KataVirtualVolume from base64/,
  ],
  [
    'an unknown virtual volume type',
    [
      {
        type: '',
        source: '',
        options: [
          `io.katacontainers.volume=${Buffer.from('{"volume_type":"layer_nydus_fs"}').toString('base64')}`,
        ],
      },
    ],
    /rootfs-mounts\[0\]: Error in handle virtual volume storage with unsupported type: "layer_nydus_fs"/,
  ],
  [
    'a malformed rootfs-mounts.json entry',
    [{ type: 'ext4' }],
    /c1\/rootfs-mounts\.json: rootfs-mounts\[0\]\.source: /,
  ],
  [
    'rootfs-mounts.json that is not an array',
    { type: 'ext4' },
    /c1\/rootfs-mounts\.json: rootfs-mounts: /,
  ],
];
for (const [title, mounts, want] of badRootfs) {
  test(`${title} exits 2 naming the rootfs mount`, async (t) => {
    const f = fixture(t);
    const r = await f.run(() => {}, {
      rootfsMounts: mounts,
      config: [['runtime', 'experimental_force_guest_pull', 'false']],
    });
    t.is(r.code, 2, r.stdout);
    t.regex(r.stderr, want);
  });
}
