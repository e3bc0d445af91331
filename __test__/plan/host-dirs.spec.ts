// The sandbox's host dirs in the plan and rootless prefixing (vectors §9; reference-runtime-rs.md
// §0, §2): every host path the plan produces moves below the rootless dir, no guest path does.
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { planHostDirs, planRootlessContext, type HostDirs } from '../../ts/plan/host-dirs.js';
import type { ResourcePlan } from '../../ts/plan/plan.js';
import { NOT_ROOTLESS } from '../../ts/plan/rootless-dirs.js';
import {
  blockFact,
  containerSpec,
  dirFact,
  fileFact,
  hostFacts,
  kataConfig,
  ociSpec,
  planOf,
} from './plan-builders.js';

const T = '/tmp/T';
const rootlessT = planRootlessContext(true, T)._unsafeUnwrap();
const SCSI = { blockDeviceDriver: 'virtio-scsi' } as const;
const SHA384_EMPTY = 'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n';
const ROOTLESS_KEY = 'io.katacontainers.config.hypervisor.rootless';

const dirsOf = (prefix: string, sid: string): HostDirs =>
  ({
    vm: `${prefix}/run/kata/${sid}`,
    jailerRoot: `${prefix}/run/kata/${sid}/root`,
    sharedSandbox: `${prefix}/run/kata-containers/shared/sandboxes/${sid}`,
    sharedRw: `${prefix}/run/kata-containers/shared/sandboxes/${sid}/rw`,
    sharedRo: `${prefix}/run/kata-containers/shared/sandboxes/${sid}/ro`,
    initdata: `${prefix}/run/kata-containers/shared/initdata/${sid}`,
    persist: `${prefix}/run/kata/${sid}`,
    directVolumes: `${prefix}/run/kata-containers/shared/direct-volumes`,
  }) as HostDirs;

test('host dirs of a sandbox, not rootless', (t) => {
  t.deepEqual(planHostDirs('sb1', NOT_ROOTLESS)._unsafeUnwrap(), dirsOf('', 'sb1'));
});

test('host dirs of a sandbox, rootless with XDG_RUNTIME_DIR=T: all below T', (t) => {
  t.deepEqual(planHostDirs('sb1', rootlessT)._unsafeUnwrap(), dirsOf(T, 'sb1'));
});

test('a sandbox id that is not a plain name gives no host dirs', (t) => {
  for (const sid of ['../x', 'a/b', '', '.', 'a\0b'])
    t.is(planHostDirs(sid, NOT_ROOTLESS)._unsafeUnwrapErr().kind, 'invalid-path', sid);
});

test('rootless context: off ignores the dir; on needs an absolute dir', (t) => {
  t.deepEqual(planRootlessContext(false, undefined)._unsafeUnwrap(), NOT_ROOTLESS);
  t.deepEqual(planRootlessContext(true, '/run/user/1000/')._unsafeUnwrap(), {
    rootless: true,
    dir: '/run/user/1000',
  });
  t.regex(
    planRootlessContext(true, undefined)._unsafeUnwrapErr(),
    /^rootless is on but host facts carry no rootlessDir/,
  );
  t.regex(
    planRootlessContext(true, 'run/user/1')._unsafeUnwrapErr(),
    /^rootlessDir: host path "run\/user\/1": must be absolute$/,
  );
});

// Plans with everything that yields a host path: shared-fs rootfs and volume, block volume, initdata.
const blockHost = (rootlessDir?: string) => ({
  ...hostFacts(
    {
      '/dev/sdb': blockFact('/dev/sdb', 8, 16),
      '/srv/data': dirFact('/srv/data'),
      '/tmp/e': dirFact('/tmp/e'),
    },
    { '8:16': { path: '/dev/sdb', readOnly: false } },
  ),
  ...(rootlessDir !== undefined ? { rootlessDir } : {}),
});
const mounts = [
  { destination: '/data', type: 'bind', source: '/dev/sdb', options: ['rbind', 'ro'] },
  { destination: '/dev/xdata', type: 'bind', source: '/dev/sdb', options: [] },
  { destination: '/srv', type: 'bind', source: '/srv/data', options: ['rbind', 'ro'] },
  { destination: '/e', type: 'ephemeral', source: '/tmp/e' },
];
function fullPlan(rootless: boolean, rootlessDir?: string): ResourcePlan {
  return planOf({
    config: kataConfig({ ...SCSI, rootless, initdata: SHA384_EMPTY }),
    host: blockHost(rootlessDir),
    containers: [{ id: 'c1', spec: containerSpec(mounts) }],
  })._unsafeUnwrap();
}

/** Every host path of a plan that the host writes, binds or creates. */
function writtenHostPaths(p: ResourcePlan): string[] {
  return [
    ...(p.initdata ? [p.initdata.hostPath, p.initdata.device.pathOnHost] : []),
    ...p.containers.flatMap((c) => [
      ...(c.rootfs.sharedBind ? [c.rootfs.sharedBind.hostPath] : []),
      ...c.sharedFsBinds.flatMap((b) => [b.hostPath, b.hostReadOnlyPath]),
      ...c.sharedMountPoints.map((m) => m.path),
    ]),
  ];
}

test('rootless off: the plan carries unprefixed host dirs and no rootless dir', (t) => {
  const p = fullPlan(false, T);
  t.is<string | null, string | null>(p.rootlessDir, null);
  t.deepEqual(p.hostDirs, dirsOf('', 'sb'));
  t.true(writtenHostPaths(p).every((x) => x.startsWith('/run/kata-containers/shared/')));
});

test('rootless on: every host path the plan writes is below the rootless dir', (t) => {
  const p = fullPlan(true, T);
  t.is<string | null, string | null>(p.rootlessDir, T);
  t.deepEqual(p.hostDirs, dirsOf(T, 'sb'));
  const written = writtenHostPaths(p);
  t.true(written.length >= 8);
  for (const x of written) t.true(x.startsWith(`${T}/run/kata-containers/shared/`), x);
  t.is<string | null, string | null>(
    p.initdata!.hostPath,
    `${T}/run/kata-containers/shared/initdata/sb/initdata.image`,
  );
  t.is(p.initdata!.device.pathOnHost, p.initdata!.hostPath);
  t.is<string | null, string | null>(
    p.containers[0]!.rootfs.sharedBind!.hostPath,
    `${T}/run/kata-containers/shared/sandboxes/sb/rw/passthrough/sb/rootfs`,
  );
});

test('rootless on: guest paths are the same as without rootless', (t) => {
  const on = fullPlan(true, T);
  const off = fullPlan(false);
  t.deepEqual(
    on.containers.map((c) => c.createContainer),
    off.containers.map((c) => c.createContainer),
  );
  t.deepEqual(on.createSandbox, off.createSandbox);
  t.false(JSON.stringify(on.containers.map((c) => c.createContainer)).includes(T));
  t.deepEqual(
    on.containers.flatMap((c) => c.sharedFsBinds.map((b) => b.guestPath)),
    off.containers.flatMap((c) => c.sharedFsBinds.map((b) => b.guestPath)),
  );
});

// §9 row: generate_shared_path rootless (XDG=T) → host dir under T/…/sandboxes/<sid>/rw/passthrough/<name>; ro untouched.
test('generate_shared_path rootless: the mount point is made under T/…/rw/passthrough/<name>, never under ro', (t) => {
  const p = fullPlan(true, T);
  const c = p.containers[1]!;
  const storages = (c.createContainer as any).storages.filter((s: any) => s.driver === 'scsi');
  t.is(storages.length, 2);
  t.deepEqual(
    c.sharedMountPoints,
    storages.map((s: any, i: number) => ({
      path: `${T}/run/kata-containers/shared/sandboxes/sb/rw/passthrough/${s.mountPoint.split('/').at(-1)}`,
      kind: i === 0 ? 'dir' : 'file',
    })),
  );
  t.true(
    c.blockDevices.some((d) => d.readOnly),
    'a read-only volume is made under rw too',
  );
  t.false(
    writtenHostPaths(p).some(
      (x) => x.includes('/ro/') && !c.sharedFsBinds.some((b) => b.hostReadOnlyPath === x),
    ),
  );
  for (const s of storages)
    t.regex(
      s.mountPoint,
      /^\/run\/kata-containers\/shared\/containers\/passthrough\/drive-\d+-[0-9a-f]{8}-(data|xdata)$/,
    );
});

test('guest paths when rootless: shm, ephemeral, guest-pull rootfs and CopyFile destination unchanged', (t) => {
  const VV =
    'io.katacontainers.volume=eyJ2b2x1bWVfdHlwZSI6ImltYWdlX2d1ZXN0X3B1bGwiLCJzb3VyY2UiOiJvdmVybGF5In0=';
  const resolv = '/var/lib/containerd/c1/resolv.conf';
  const p = planOf({
    config: kataConfig({ sharedFs: 'none', rootless: true }, { experimentalForceGuestPull: true }),
    host: {
      ...hostFacts({ [resolv]: fileFact(resolv), '/tmp/e': dirFact('/tmp/e') }),
      rootlessDir: T,
    },
    containers: [
      {
        id: 'c1',
        spec: containerSpec(
          [
            {
              destination: '/etc/resolv.conf',
              type: 'bind',
              source: resolv,
              options: ['rbind', 'ro'],
            },
            { destination: '/e', type: 'ephemeral', source: '/tmp/e' },
          ],
          {
            'io.kubernetes.cri.image-name': 'example-image-x',
          },
        ),
        rootfsMounts: [{ type: '', source: '', options: [VV] }],
      },
    ],
  })._unsafeUnwrap();
  const c = p.containers[1]!;
  t.is<string | null, string | null>(c.rootfs.guestPath, '/run/kata-containers/c1/rootfs');
  t.regex(
    c.copies[0]!.guestPath,
    /^\/run\/kata-containers\/shared\/containers\/c1-[0-9a-f]{16}-resolv\.conf$/,
  );
  const storages = (c.createContainer as any).storages;
  t.true(storages.some((s: any) => s.mountPoint === '/run/kata-containers/sandbox/ephemeral/e'));
  t.true(JSON.stringify(p.createSandbox).includes('"/run/kata-containers/sandbox/shm"'));
  t.false(
    JSON.stringify([
      p.createSandbox,
      ...p.containers.map((x) => x.createContainer),
      c.copies,
    ]).includes(T),
  );
});

test('rootless from its allowed annotation prefixes host dirs', (t) => {
  const config = kataConfig({ enableAnnotations: ['rootless'] });
  const spec = ociSpec((s) => (s.annotations = { ...s.annotations, [ROOTLESS_KEY]: 'true' }));
  const p = planOf({
    config,
    host: { ...hostFacts(), rootlessDir: T },
    sandbox: { id: 'sb', spec },
  })._unsafeUnwrap();
  t.is<string | null, string | null>(p.rootlessDir, T);
  t.is<string | null, string | null>(p.hostDirs.vm, `${T}/run/kata/sb`);
});

test('rootless annotation not enabled: host dirs stay unprefixed', (t) => {
  const spec = ociSpec((s) => (s.annotations = { ...s.annotations, [ROOTLESS_KEY]: 'true' }));
  const p = planOf({
    config: kataConfig({ enableAnnotations: [] }),
    host: { ...hostFacts(), rootlessDir: T },
    sandbox: { id: 'sb', spec },
  })._unsafeUnwrap();
  t.is<string | null, string | null>(p.rootlessDir, null);
  t.is<string | null, string | null>(p.hostDirs.vm, '/run/kata/sb');
});

test('rootless on without a rootless dir is refused naming the config key', (t) => {
  const e = planOf({ config: kataConfig({ rootless: true }) })._unsafeUnwrapErr();
  t.deepEqual(formatPlanError(e), [
    'kata-ts: configuration.toml: hypervisor.qemu.rootless: rootless is on but host facts carry no rootlessDir (the VMM user runtime dir, /run/user/<uid>)',
  ]);
});

test('rootless on by annotation without a rootless dir is refused naming the annotation', (t) => {
  const spec = ociSpec((s) => (s.annotations = { ...s.annotations, [ROOTLESS_KEY]: 'true' }));
  const e = planOf({
    config: kataConfig({ enableAnnotations: ['rootless'] }),
    sandbox: { id: 'sb', spec },
  })._unsafeUnwrapErr();
  t.deepEqual(formatPlanError(e), [
    `kata-ts: /bundles/sb/config.json: ${ROOTLESS_KEY}: rootless is on but host facts carry no rootlessDir (the VMM user runtime dir, /run/user/<uid>)`,
  ]);
});

test('a relative rootless dir is refused', (t) => {
  const e = planOf({
    config: kataConfig({ rootless: true }),
    host: { ...hostFacts(), rootlessDir: 'run/user/1' },
  })._unsafeUnwrapErr();
  t.deepEqual(
    e.problems.map((x) => x.field),
    ['hypervisor.qemu.rootless'],
  );
});
