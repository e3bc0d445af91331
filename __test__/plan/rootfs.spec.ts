// vectors.md §4.1/4.2 (block rootfs, HEAD options), §4.4/4.5 (virtual volumes), force guest pull
// in both spellings with and without a shared fs, and the refused rootfs inputs.
import test from 'ava';
import {
  encodeVirtualVolume,
  FORCE_GUEST_PULL_OPTION,
  decodeVirtualVolume,
} from '../../ts/plan/virtual-volume.js';
import type { RootfsMount } from '../../ts/plan/rootfs.js';
import {
  blockFact,
  containerSpec,
  dirFact,
  fileFact,
  hostFacts,
  kataConfig,
  ociSpec,
  planMessages,
  planOf,
} from './plan-builders.js';
import type { KataConfig } from '../../ts/config/kata-config.js';
import type { HostFacts } from '../../ts/plan/host-facts.js';

const DM = '/dev/dm-3';
const BLOCKFILE = '/var/lib/containerd/io.containerd.snapshotter.v1.blockfile/snapshots/12';
const host = hostFacts(
  {
    [DM]: blockFact(DM, 253, 3),
    [BLOCKFILE]: fileFact(BLOCKFILE, { ino: 4242 }),
    '/srv/dir': dirFact('/srv/dir'),
  },
  { '253:3': { path: '/dev/dm-3', readOnly: false } },
);
const SCSI = kataConfig({ blockDeviceDriver: 'virtio-scsi' });

function rootfsOf(
  mounts: RootfsMount[] | undefined,
  config: KataConfig = SCSI,
  h: HostFacts = host,
  annotations: Record<string, string> = {},
) {
  return planOf({
    config,
    host: h,
    containers: [
      {
        id: 'c1',
        spec: containerSpec([], annotations),
        ...(mounts ? { rootfsMounts: mounts } : {}),
      },
    ],
  });
}
const request = (r: ReturnType<typeof rootfsOf>) =>
  r._unsafeUnwrap().containers[1]!.createContainer as any;

// §4.1 is_block_rootfs
test('a block-device rootfs is attached by major:minor and mounted at <share>/passthrough/<cid>/rootfs (runtime-rs do_get_guest_path)', (t) => {
  const r = rootfsOf([{ type: 'ext4', source: DM, options: ['rw'] }]);
  const c = r._unsafeUnwrap().containers[1]!;
  t.like(c.rootfs, {
    kind: 'block',
    guestPath: '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
  });
  t.like(c.blockDevices[0], { pathOnHost: '/dev/dm-3', hotplug: true, readOnly: false });
  t.deepEqual(request(r).storages[0], {
    driver: 'scsi',
    source: '0:0',
    fstype: 'ext4',
    options: ['rw'],
    mountPoint: '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
  });
  t.is(request(r).OCI.Root.Path, '/run/kata-containers/shared/containers/passthrough/c1/rootfs');
});

test('with a shared fs, a block rootfs has its mount point made on the host in rw/passthrough/<cid>/rootfs', (t) => {
  const shared = rootfsOf(
    [{ type: 'ext4', source: DM, options: ['rw'] }],
    kataConfig({ sharedFs: 'virtio-fs', blockDeviceDriver: 'virtio-scsi' }),
  )._unsafeUnwrap().containers[1]!;
  t.deepEqual(
    shared.sharedMountPoints
      .filter((p) => p.path.endsWith('/passthrough/c1/rootfs'))
      .map((p) => p.kind),
    ['dir'],
  );
  t.regex(shared.sharedMountPoints[0]!.path, /\/rw\/passthrough\/c1\/rootfs$/);
});

test('a blockfile snapshot (regular file with loop) attaches the file itself, loop removed', (t) => {
  const r = rootfsOf([{ type: 'ext4', source: BLOCKFILE, options: ['loop', 'rw'] }]);
  t.like(r._unsafeUnwrap().containers[1]!.blockDevices[0], { pathOnHost: BLOCKFILE });
  t.deepEqual(request(r).storages[0].options, ['rw']);
});

test('a regular file without loop is not a block rootfs (falls through to the shared-fs rootfs)', (t) => {
  const r = rootfsOf([{ type: 'ext4', source: BLOCKFILE, options: ['rw'] }]);
  t.like(r._unsafeUnwrap().containers[1]!.rootfs, { kind: 'shared-fs' });
});

test('a block rootfs whose major:minor has no host device is refused', (t) => {
  const h = hostFacts({ [DM]: blockFact(DM, 253, 9) });
  t.regex(
    planMessages(rootfsOf([{ type: 'ext4', source: DM, options: [] }], SCSI, h))[0]!,
    /^rootfs-mounts\[0\]: no host block device 253:9/,
  );
});

// §4.2 options, HEAD column
const optionRows: [string, string[], string[]][] = [
  ['ext4', ['rw'], ['rw']],
  ['xfs', ['rw'], ['rw', 'nouuid']],
  ['xfs', ['nouuid'], ['nouuid']],
];
for (const [fstype, options, want] of optionRows) {
  test(`block rootfs ${fstype} ${JSON.stringify(options)} → Storage.options ${JSON.stringify(want)}`, (t) => {
    t.deepEqual(
      request(rootfsOf([{ type: fstype, source: DM, options }])).storages[0].options,
      want,
    );
  });
}

const drivers: [string, Partial<KataConfig['hypervisor']>, Record<string, string>][] = [
  [
    'virtio-blk-pci',
    { blockDeviceDriver: 'virtio-blk-pci', pcieRootPort: 1 },
    { driver: 'blk', source: '10/00' },
  ],
  [
    'virtio-blk-mmio',
    { blockDeviceDriver: 'virtio-blk-mmio' },
    { driver: 'mmioblk', source: '/dev/vda' },
  ],
  [
    'virtio-blk-ccw',
    { blockDeviceDriver: 'virtio-blk-ccw' },
    { driver: 'blk-ccw', source: '0.0.0010' },
  ],
  ['virtio-scsi', { blockDeviceDriver: 'virtio-scsi' }, { driver: 'scsi', source: '0:0' }],
];
for (const [name, hv, want] of drivers) {
  test(`a block rootfs works with ${name}`, (t) => {
    t.like(
      request(rootfsOf([{ type: 'ext4', source: DM, options: [] }], kataConfig(hv))).storages[0],
      want,
    );
  });
}

test('(unlike the reference) a virtio-pmem block rootfs works: nvdimm, source /dev/pmem0', (t) => {
  const storage = request(
    rootfsOf(
      [{ type: 'ext4', source: DM, options: [] }],
      kataConfig({ blockDeviceDriver: 'virtio-pmem', pcieRootPort: 1 }),
    ),
  ).storages[0];
  t.like(storage, {
    driver: 'nvdimm',
    source: '/dev/pmem0',
    fstype: 'ext4',
    mountPoint: '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
  });
});

// Shared-fs rootfs
test('no rootfs mounts: root.path is shared over virtio-fs, no Storage', (t) => {
  const c = rootfsOf(undefined, kataConfig())._unsafeUnwrap().containers[1]!;
  t.like(c.rootfs, {
    kind: 'shared-fs',
    guestPath: '/run/kata-containers/shared/containers/passthrough/c1/rootfs',
    storages: [],
  });
  t.like(c.rootfs.sharedBind, {
    source: '/bundles/c1/rootfs',
    hostPath: '/run/kata-containers/shared/sandboxes/sb/rw/passthrough/c1/rootfs',
  });
});

test('an overlay rootfs mount is mounted at <bundle>/rootfs on the host, then shared', (t) => {
  const overlay = {
    type: 'overlay',
    source: 'overlay',
    options: ['lowerdir=/l1:/l2', 'upperdir=/u', 'workdir=/w'],
  };
  const c = rootfsOf([overlay], kataConfig())._unsafeUnwrap().containers[1]!;
  t.deepEqual(c.rootfs.hostMount, { ...overlay, target: '/bundles/c1/rootfs' });
  t.like(c.rootfs.sharedBind, { source: '/bundles/c1/rootfs' });
});

test('shared_fs = none without a block or guest-pull rootfs is refused', (t) => {
  t.regex(
    planMessages(rootfsOf(undefined, kataConfig({ sharedFs: 'none' })))[0]!,
    /share fs is unavailable/,
  );
});

test('more than one rootfs mount is refused', (t) => {
  const m = { type: 'ext4', source: DM, options: [] };
  t.deepEqual(planMessages(rootfsOf([m, m])), ['rootfs-mounts: unsupported rootfs mounts count 2']);
});

// §4.4 / §4.5 virtual volumes
const VV =
  'io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ImltYWdlX2d1ZXN0X3B1bGwiLCJzb3VyY2UiOiJvdmVybGF5In0=';
const CRI = {
  'io.kubernetes.cri.container-type': 'container',
  'io.kubernetes.cri.image-name': 'example-image-x',
};

test('VirtualVolume::new: image_guest_pull → one Storage with the image, overlay fstype and all annotations as metadata', (t) => {
  const r = planOf({
    config: SCSI,
    host,
    containers: [
      {
        id: '4adf90201',
        spec: containerSpec([], CRI),
        rootfsMounts: [{ type: '', source: '', options: [VV] }],
      },
    ],
  });
  const c = r._unsafeUnwrap().containers[1]!;
  const storage = (c.createContainer as any).storages[0];
  t.like(c.rootfs, { kind: 'guest-pull', guestPath: '/run/kata-containers/4adf90201/rootfs' });
  t.like(storage, {
    source: 'example-image-x',
    driver: 'image_guest_pull',
    fstype: 'overlay',
    mountPoint: '/run/kata-containers/4adf90201/rootfs',
  });
  t.is(storage.options, undefined);
  const [opt] = storage.driverOptions;
  t.true(opt.startsWith('image_guest_pull='));
  const annotations = containerSpec([], CRI).annotations;
  t.deepEqual(JSON.parse(opt.slice('image_guest_pull='.length)), { metadata: annotations });
});

test('the KataVirtualVolume JSON round-trips and omits empty fields', (t) => {
  t.is(
    encodeVirtualVolume({ volume_type: 'direct_block' }),
    'eyJ2b2x1bWVfdHlwZSI6ImRpcmVjdF9ibG9jayJ9',
  );
  const v = {
    volume_type: 'image_guest_pull',
    source: '/tmp',
    fs_type: 'ext4',
    options: ['rw'],
    nydus_image: { config: 'test', snapshot_dir: '/var/lib/nydus.dir' },
    direct_volume: { metadata: { mode: 'rw' } },
  };
  t.deepEqual(decodeVirtualVolume(encodeVirtualVolume(v))._unsafeUnwrap(), v);
});

test('adjust_rootfs_mounts: the force-guest-pull option is the reference string', (t) => {
  t.is(
    FORCE_GUEST_PULL_OPTION,
    'io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ImltYWdlX2d1ZXN0X3B1bGwifQ==',
  );
});

const badVolumes: [string, string, RegExp][] = [
  [
    'an unsupported type',
    `io.katacontainers.volume=${encodeVirtualVolume({ volume_type: 'direct_block' })}`,
    /^rootfs-mounts\[0\]: Error in handle virtual volume storage with unsupported type: "direct_block"$/,
  ],
  [
    'an unknown type',
    `io.katacontainers.volume=${encodeVirtualVolume({ volume_type: 'bogus' })}`,
    /unsupported type: "bogus"/,
  ],
  [
    'bad base64',
    'io.katacontainers.volume=not*base64',
    /^rootfs-mounts\[0\]: Failed to decode KataVirtualVolume from base64: not\*base64/,
  ],
  [
    'unpadded base64',
    'io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ImRpcmVjdF9ibG9jayJ9A',
    /Failed to decode KataVirtualVolume/,
  ],
  [
    'base64 of a non-object',
    `io.katacontainers.volume=${Buffer.from('[1]').toString('base64')}`,
    /Failed to decode KataVirtualVolume/,
  ],
  ['an empty payload', 'io.katacontainers.volume=', /Failed to decode KataVirtualVolume/],
];
for (const [title, option, want] of badVolumes) {
  test(`a virtual volume with ${title} is refused naming the rootfs mount`, (t) => {
    const msgs = planMessages(
      rootfsOf([{ type: '', source: '', options: [option] }], SCSI, host, CRI),
    );
    t.is(msgs.length, 1);
    t.regex(msgs[0]!, want);
  });
}

test('a guest-pull volume without an image reference is refused naming the rootfs mount', (t) => {
  const spec = ociSpec((x) => {
    x.mounts = [];
    x.annotations = { 'io.kubernetes.cri.container-type': 'container' };
  });
  const msgs = planMessages(
    planOf({
      config: SCSI,
      host,
      containers: [{ id: 'c1', spec, rootfsMounts: [{ type: '', source: '', options: [VV] }] }],
    }),
  );
  t.is(msgs.length, 1);
  t.regex(msgs[0]!, /^rootfs-mounts\[0\]: .*get image reference failed/);
});

// Force guest pull
const force: [string, KataConfig][] = [
  [
    'experimental = ["force_guest_pull"], shared_fs = none',
    kataConfig({ sharedFs: 'none' }, { experimental: ['force_guest_pull'] }),
  ],
  [
    'experimental = ["force_guest_pull"], shared_fs = virtio-fs (the reference ignores it here)',
    kataConfig({}, { experimental: ['force_guest_pull'] }),
  ],
  [
    'experimental_force_guest_pull = true, shared_fs = none',
    kataConfig({ sharedFs: 'none' }, { experimentalForceGuestPull: true }),
  ],
  [
    'experimental_force_guest_pull = true, shared_fs = virtio-fs',
    kataConfig({}, { experimentalForceGuestPull: true }),
  ],
];
for (const [title, config] of force) {
  test(`force guest pull with ${title} ignores the rootfs mounts and pulls in the guest`, (t) => {
    const r = rootfsOf([{ type: 'ext4', source: DM, options: ['rw'] }], config, host, CRI);
    const c = r._unsafeUnwrap().containers[1]!;
    t.like(c.rootfs, { kind: 'guest-pull', guestPath: '/run/kata-containers/c1/rootfs' });
    t.deepEqual(c.blockDevices, []);
    t.like((c.createContainer as any).storages[0], {
      driver: 'image_guest_pull',
      source: 'example-image-x',
      fstype: 'overlay',
    });
  });
}

const forceAnnotations: [string, Record<string, string>][] = [
  [
    'io.katacontainers.config.runtime.experimental=force_guest_pull',
    { 'io.katacontainers.config.runtime.experimental': 'force_guest_pull' },
  ],
  [
    'io.katacontainers.config.runtime.experimental_force_guest_pull=true',
    { 'io.katacontainers.config.runtime.experimental_force_guest_pull': 'true' },
  ],
];
for (const [title, annotations] of forceAnnotations) {
  test(`force guest pull from the sandbox annotation ${title}`, (t) => {
    const sandbox = containerSpec([], {
      'io.kubernetes.cri.container-type': 'sandbox',
      ...annotations,
    });
    const p = planOf({
      config: kataConfig({ sharedFs: 'none' }),
      host,
      sandbox: { id: 'sb', spec: sandbox },
      containers: [{ id: 'c1', spec: containerSpec([], CRI) }],
    })._unsafeUnwrap();
    t.like(p.containers[0]!.rootfs, { kind: 'guest-pull' });
    t.like((p.containers[0]!.createContainer as any).storages[0], { source: 'pause' });
    t.like((p.containers[1]!.createContainer as any).storages[0], { source: 'example-image-x' });
  });
}
