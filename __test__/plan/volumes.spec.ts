// Block volumes and container block devices (vectors §1.2, §1.8), shared-fs volumes with ro/rw
// refcounts, and the handler order of the reference.
import test from 'ava';
import { buildBindMountOptions, filterBlockStorageOptions } from '../../ts/plan/volumes-block.js';
import { SharedFsVolumes } from '../../ts/plan/volumes-shared-fs.js';
import { planHostDirs } from '../../ts/plan/host-dirs.js';
import { NOT_ROOTLESS } from '../../ts/plan/rootless-dirs.js';
import { sequentialHex } from '../../ts/plan/volumes-paths.js';
import {
  blockFact,
  containerSpec,
  dirFact,
  hostFacts,
  kataConfig,
  ociSpec,
  planMessages,
  planOf,
} from './plan-builders.js';

test('build_bind_mount_options(vol=[ro,nosuid], oci=[rbind,noexec]) = [rbind,noexec,ro,nosuid]', (t) => {
  t.deepEqual(buildBindMountOptions(['ro', 'nosuid'], ['rbind', 'noexec']), [
    'rbind',
    'noexec',
    'ro',
    'nosuid',
  ]);
});
test('build_bind_mount_options(vol=[], oci=[noexec,nodev]) adds bind', (t) => {
  t.deepEqual(buildBindMountOptions([], ['noexec', 'nodev']), ['noexec', 'nodev', 'bind']);
});
test('filter_block_storage_options drops bind and rbind', (t) => {
  t.deepEqual(filterBlockStorageOptions(['bind', 'rw', 'rbind', 'ro']), ['rw', 'ro']);
});

const SCSI = kataConfig({ blockDeviceDriver: 'virtio-scsi' });
const PCI = kataConfig({ blockDeviceDriver: 'virtio-blk-pci', pcieRootPort: 2 });
const blockHost = hostFacts(
  { '/dev/sdb': blockFact('/dev/sdb', 8, 16) },
  { '8:16': { path: '/dev/sdb', readOnly: false } },
);
const blockBind = (options: string[], destination = '/data') => ({
  destination,
  type: 'bind',
  source: '/dev/sdb',
  options,
});

test('a read-only block volume: Storage options [ro], OCI mount type bind from the passthrough mount point', (t) => {
  const p = planOf({
    config: SCSI,
    host: blockHost,
    containers: [{ id: 'c1', spec: containerSpec([blockBind(['rbind', 'ro'])]) }],
  })._unsafeUnwrap();
  const req = p.containers[1]!.createContainer as any;
  const storage = req.storages.at(-1);
  t.like(storage, { driver: 'scsi', source: '0:0', fstype: 'ext4', options: ['ro'] });
  t.regex(
    storage.mountPoint,
    /^\/run\/kata-containers\/shared\/containers\/passthrough\/drive-0-[0-9a-f]{8}-data$/,
  );
  t.deepEqual(req.OCI.Mounts[0], {
    destination: '/data',
    source: storage.mountPoint,
    type: 'bind',
    options: ['rbind', 'ro'],
  });
  t.like(p.containers[1]!.blockDevices[0], {
    pathOnHost: '/dev/sdb',
    readOnly: true,
    hotplug: true,
    scsiAddr: '0:0',
  });
});

test('a block volume on virtio-blk-pci uses the PCI path as Storage.source and adds bind to OCI options', (t) => {
  const p = planOf({
    config: PCI,
    host: blockHost,
    containers: [{ id: 'c1', spec: containerSpec([blockBind(['noexec'])]) }],
  })._unsafeUnwrap();
  const req = p.containers[1]!.createContainer as any;
  t.like(req.storages.at(-1), {
    driver: 'blk',
    source: '10/00',
    fstype: 'ext4',
    options: ['noexec'],
  });
  t.deepEqual(req.OCI.Mounts[0].options, ['noexec', 'bind']);
});

test('a block volume mounted under /dev gets fstype bind', (t) => {
  const p = planOf({
    config: SCSI,
    host: blockHost,
    containers: [{ id: 'c1', spec: containerSpec([blockBind([], '/dev/xdata')]) }],
  })._unsafeUnwrap();
  t.is((p.containers[1]!.createContainer as any).storages.at(-1).fstype, 'bind');
});

const deviceRows: [string, ReturnType<typeof kataConfig>, Record<string, string>][] = [
  ['virtio-scsi: id = SCSI address', SCSI, { id: '0:0', type: 'scsi', vmPath: '/dev/sda' }],
  ['virtio-blk-pci: id = PCI path', PCI, { id: '10/00', type: 'blk', vmPath: '/dev/vda' }],
  [
    'virtio-blk-ccw: id = CCW address',
    kataConfig({ blockDeviceDriver: 'virtio-blk-ccw' }),
    { id: '0.0.0010', type: 'blk-ccw', vmPath: '/dev/vda' },
  ],
  [
    'virtio-blk-mmio: id = virt path',
    kataConfig({ blockDeviceDriver: 'virtio-blk-mmio' }),
    { id: '/dev/vda', type: 'mmioblk', vmPath: '/dev/vda' },
  ],
];
for (const [title, config, want] of deviceRows) {
  test(`a linux.devices block device → agent Device, ${title}`, (t) => {
    const spec = ociSpec((s) => {
      s.mounts = [];
      s.linux.devices = [{ path: '/dev/xvda', type: 'b', major: 8, minor: 16 }];
    });
    const p = planOf({ config, host: blockHost, containers: [{ id: 'c1', spec }] })._unsafeUnwrap();
    const devs = (p.containers[1]!.createContainer as any).devices;
    t.deepEqual(devs, [{ ...want, containerPath: '/dev/xvda' }]);
  });
}

// Shared-fs volumes (shared_fs = virtio-fs).
const SRC = '/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/cm';
const sharedHost = hostFacts({ [SRC]: dirFact(SRC), '/srv/data': dirFact('/srv/data') });
const shared = (source: string, destination: string, ro: boolean) => ({
  destination,
  type: 'bind',
  source,
  options: ro ? ['rbind', 'ro'] : ['rbind'],
});

test('a virtio-fs volume binds into <sid>/rw/passthrough and the guest sees it under the share dir', (t) => {
  const p = planOf({
    host: sharedHost,
    containers: [{ id: 'c1', spec: containerSpec([shared('/srv/data', '/data', true)]) }],
  })._unsafeUnwrap();
  const bind = p.containers[1]!.sharedFsBinds[0]!;
  t.like(bind, { hostSource: '/srv/data', readOnly: true, action: 'bind' });
  t.regex(
    bind.hostPath,
    /^\/run\/kata-containers\/shared\/sandboxes\/sb\/rw\/passthrough\/sandbox-[0-9a-f]{8}-data$/,
  );
  t.is<string, string>(bind.hostReadOnlyPath, bind.hostPath.replace('/rw/', '/ro/'));
  t.is<string, string>(
    bind.guestPath,
    `/run/kata-containers/shared/containers/passthrough/${bind.hostPath.split('/').pop()}`,
  );
  t.like((p.containers[1]!.createContainer as any).OCI.Mounts[0], {
    source: bind.guestPath,
    type: 'bind',
    options: ['rbind', 'ro'],
  });
});

test('containers sharing a virtio-fs volume reuse one bind; a rw user upgrades a ro bind', (t) => {
  const p = planOf({
    host: sharedHost,
    containers: [
      { id: 'c1', spec: containerSpec([shared(SRC, '/etc/cfg', true)]) },
      { id: 'c2', spec: containerSpec([shared(SRC, '/etc/cfg', true)]) },
      { id: 'c3', spec: containerSpec([shared(SRC, '/etc/cfg', false)]) },
    ],
  })._unsafeUnwrap();
  const binds = p.containers.slice(1).map((c) => c.sharedFsBinds[0]!);
  t.deepEqual(
    binds.map((b) => b.action),
    ['bind', 'reuse', 'upgrade-rw'],
  );
  t.is(new Set(binds.map((b) => b.guestPath)).size, 1);
});

test('SharedFsVolumes counts ro and rw users and says when to downgrade and unmount', (t) => {
  const s = new SharedFsVolumes(planHostDirs('sb', NOT_ROOTLESS)._unsafeUnwrap());
  const random = sequentialHex();
  s.acquire('/src', true, random);
  s.acquire('/src', false, random);
  t.deepEqual(s.counts('/src'), { ro: 1, rw: 1 });
  t.is(s.release('/src', false), 'downgrade-ro');
  t.is(s.release('/src', false), 'unknown', 'no rw user left');
  t.is(s.release('/src', true), 'unmount');
  t.is(s.counts('/src'), undefined);
});

test('a virtio-fs volume whose source is missing on the host is refused naming the mount', (t) => {
  const msgs = planMessages(
    planOf({ containers: [{ id: 'c1', spec: containerSpec([shared('/nope', '/x', false)]) }] }),
  );
  t.deepEqual(msgs, ['mounts[0]: mount source /nope does not exist on the host']);
});

test('the handler order: shm, ephemeral, block, shared-fs, default; storages in mount order', (t) => {
  const host = hostFacts(
    {
      '/dev/sdb': blockFact('/dev/sdb', 8, 16),
      '/srv/data': dirFact('/srv/data'),
      '/tmp/e': dirFact('/tmp/e'),
    },
    { '8:16': { path: '/dev/sdb', readOnly: false } },
  );
  const mounts = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/blk', type: 'bind', source: '/dev/sdb' },
    shared('/srv/data', '/data', false),
    { destination: '/dev/shm', type: 'bind', source: '/run/x/shm' },
    { destination: '/e', type: 'ephemeral', source: '/tmp/e' },
  ];
  const p = planOf({
    config: SCSI,
    host,
    containers: [{ id: 'c1', spec: containerSpec(mounts) }],
  })._unsafeUnwrap();
  t.deepEqual(
    p.containers[1]!.volumes.map((v) => v.kind),
    ['default', 'block', 'shared-fs', 'shm', 'ephemeral'],
  );
  t.deepEqual(
    (p.containers[1]!.createContainer as any).storages.map((s: any) => s.driver),
    ['scsi', 'ephemeral'],
  );
});
