// fast-check arbitraries for whole planner inputs: OCI spec JSON texts, annotations, host facts
// and configuration.toml texts, valid and hostile. Sources and devices come from a small pool of
// host paths so specs and host facts meet often enough to reach the deep parts of the planner.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import type { HostFacts, PathFact } from '../../ts/plan/host-facts.js';
import { FORCE_GUEST_PULL_OPTION } from '../../ts/plan/virtual-volume.js';
import {
  containerId,
  controlText,
  cpusetText,
  hostileAbsolutePath,
  hostileNumber,
  hostilePath,
  oversizeText,
} from './hostile-values.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const EXAMPLE_CONFIG_TEXT = readFileSync(
  path.join(root, 'examples/configuration-qemu.toml'),
  'utf8',
);
const EXAMPLE_SPEC: Record<string, any> = JSON.parse(
  readFileSync(path.join(root, 'examples/bundle/config.json'), 'utf8'),
);

const KL = '/var/lib/kubelet/pods/p1/volumes';
/** Host paths specs name and host facts describe. */
export const HOST_POOL = [
  '/srv/data',
  '/srv/file',
  '/dev/sdb',
  '/dev/sdc',
  '/dev/shm',
  '/tmp/e',
  `${KL}/kubernetes.io~configmap/cm`,
  `${KL}/kubernetes.io~secret/s`,
  `${KL}/kubernetes.io~empty-dir/e`,
  '/var/lib/containerd/c/resolv.conf',
  '/proc/x',
  '/sys/y',
  '/srv/ü😀',
  '/srv/a b',
  '/var/lib/containerd/io.containerd.snapshotter.v1.blockfile/snapshots/1',
];

const source = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOST_POOL) },
  { weight: 2, arbitrary: hostilePath },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom(...HOST_POOL), controlText).map(([p, c]) => `${p}${c}`),
  },
);
const destination = fc.oneof(
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/data',
      '/dev/shm',
      '/dev/xdata',
      '/etc/hosts',
      '/',
      '/a/../..',
      '/run/kata-containers',
      '/e',
      '//x//',
      '/dev',
    ),
  },
  { weight: 2, arbitrary: hostileAbsolutePath },
  { weight: 1, arbitrary: hostilePath },
  { weight: 1, arbitrary: controlText.map((c) => `/data${c}`) },
);
const mountOption = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.constantFrom(
      'rbind',
      'bind',
      'ro',
      'rw',
      'nosuid',
      'noexec',
      'nodev',
      'loop',
      'size=1k',
      'mode=1777',
      'nouuid',
      FORCE_GUEST_PULL_OPTION,
      'io.katacontainers.volume=!!',
    ),
  },
  // Virtual volume payloads near and over MAX_VIRTUAL_VOLUME_BYTES, and with control characters.
  { weight: 1, arbitrary: oversizeText.map((v) => `io.katacontainers.volume=${v}`) },
  { weight: 1, arbitrary: controlText.map((v) => `io.katacontainers.volume=${v}`) },
);

/** Rootfs mounts as a shim receives them: none, overlay, block, loop file, virtual volume, too many. */
export const rootfsMounts = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.constant([
      { type: 'overlay', source: 'overlay', options: ['lowerdir=/a', 'upperdir=/b'] },
    ]),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({
        type: fc.constantFrom('ext4', 'xfs', 'overlay', 'fuse.nydus-overlayfs', ''),
        source,
        options: fc.uniqueArray(mountOption, { maxLength: 3 }),
      })
      .map((m) => [m]),
  },
  {
    weight: 1,
    arbitrary: fc.array(
      fc.record({ type: fc.constant('overlay'), source, options: fc.constant([]) }),
      { minLength: 2, maxLength: 3 },
    ),
  },
);

/** A JSON value nested `depth` levels (arrays and objects), for parser stress. */
const deep = fc.integer({ min: 1, max: 3000 }).map((depth) => {
  let v: unknown = 'leaf';
  for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { k: v };
  return v;
});

const KATA_HV = 'io.katacontainers.config.hypervisor.';
const annotationKey = fc.constantFrom(
  `${KATA_HV}default_vcpus`,
  `${KATA_HV}default_max_vcpus`,
  `${KATA_HV}default_memory`,
  `${KATA_HV}rootless`,
  `${KATA_HV}block_device_driver`,
  `${KATA_HV}shared_fs`,
  `${KATA_HV}pcie_root_port`,
  `${KATA_HV}pcie_switch_port`,
  `${KATA_HV}cc_init_data`,
  `${KATA_HV}path`,
  `${KATA_HV}kernel_params`,
  `${KATA_HV}virtio_fs_extra_args`,
  `${KATA_HV}bogus`,
  'io.katacontainers.config.runtime.experimental',
  'io.katacontainers.config.runtime.sandbox_cgroup_only',
  'io.katacontainers.config.agent.kernel_modules',
  'io.kubernetes.cri.sandbox-cpu-quota',
  'io.kubernetes.cri.sandbox-cpu-period',
  'io.kubernetes.cri.sandbox-memory',
  'io.kubernetes.cri.image-name',
  'io.kubernetes.cri.container-type',
  '__proto__',
  'constructor',
  `${KATA_HV}bogus\nkata-ts: fake: injected`,
  `io.katacontainers.config.runtime.\u001b[2J`,
);
/** base64(gzip(TOML)) as cc_init_data carries: valid documents, wrong versions/algorithms, random text. */
const initdataAnnotation = fc
  .oneof(
    fc.constantFrom(
      'algorithm = "sha384"\nversion = "0.1.0"\n[data]\n',
      'algorithm = "sha256"\nversion = "0.1.0"\n[data]\n"policy.rego" = "x"\n',
      'algorithm = "sha512"\nversion = "0.1.0"\n[data]\nk = 1\n',
      'algorithm = "md5"\nversion = "0.1.0"\n[data]\n',
      'version = "9.9"\n',
      '[data]\n[data]\n',
    ),
    fc.string({ unit: 'binary', maxLength: 40 }),
  )
  .map((toml) => gzipSync(toml).toString('base64'));

const annotationValue = fc.oneof(
  { weight: 4, arbitrary: initdataAnnotation },
  { weight: 2, arbitrary: controlText },
  { weight: 1, arbitrary: oversizeText },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'true',
      'false',
      '0',
      '1',
      '-1',
      '0.5',
      '240',
      '4294967296',
      '9007199254740993',
      '2Gi',
      'virtio-blk-pci',
      'virtio-scsi',
      'none',
      'virtio-fs',
      'force_guest_pull',
      'sandbox',
      'container',
      'H4sIAAAAAAAA/w==',
      '',
      ' ',
      '1e400',
    ),
  },
  { weight: 4, arbitrary: hostileNumber.map(String) },
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
);

/** Mostly `calm`, `hostile` one time in `1 + odds` (never when `hostile` is off). */
function mix<T>(
  calm: fc.Arbitrary<T>,
  hostile: fc.Arbitrary<T>,
  on: boolean,
  odds = 4,
): fc.Arbitrary<T> {
  return on ? fc.oneof({ weight: odds, arbitrary: calm }, { weight: 1, arbitrary: hostile }) : calm;
}

const calmQuota = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 4_000_000 }));
const calmPeriod = fc.oneof(
  fc.constantFrom(100_000, 1_000_000, 300_000, 299_999),
  fc.integer({ min: 1000, max: 1_000_000 }),
);
const calmCpuset = fc.constantFrom('0', '1', '0-3', '2-7', '0,4', '1,3-4,6-8', '0-1,1-2');
const calmDestination = fc.constantFrom(
  '/data',
  '/dev/shm',
  '/dev/xdata',
  '/etc/hosts',
  '/e',
  '/srv',
  '/cache',
  '/etc/resolv.conf',
  '/run/secrets/s',
);
const calmAnnotationValue = fc.constantFrom(
  'true',
  'false',
  '1',
  '2',
  '0.5',
  '100000',
  '200000',
  '268435456',
  'virtio-blk-pci',
  'force_guest_pull',
  'example-image',
  '/usr/bin/qemu-system-x86_64',
);

function cpu(hostile: boolean) {
  return fc.record(
    {
      quota: mix(calmQuota, hostileNumber, hostile),
      period: mix(calmPeriod, hostileNumber, hostile),
      cpus: mix(calmCpuset, cpusetText, hostile, 2),
      mems: mix(fc.constantFrom('0', '0-1'), cpusetText, hostile),
      shares: mix(fc.nat(262_144), hostileNumber, hostile),
    },
    { requiredKeys: [] },
  );
}

function device(hostile: boolean) {
  return fc.record({
    path: mix(fc.constantFrom('/dev/sdb', '/dev/sdc', '/dev/null'), hostileAbsolutePath, hostile),
    type: mix(fc.constantFrom('b', 'c'), fc.constantFrom('u', 'p', 'x'), hostile),
    major: mix(fc.constantFrom(8, 253, 1), hostileNumber, hostile),
    minor: mix(fc.constantFrom(16, 32, 3), hostileNumber, hostile),
  });
}

function mount(hostile: boolean) {
  return fc.record(
    {
      destination: mix(calmDestination, destination, hostile, 2),
      type: fc.constantFrom(
        'bind',
        'bind',
        'bind',
        'ephemeral',
        'tmpfs',
        'proc',
        'sysfs',
        '',
        'local',
        'overlay',
      ),
      source: mix(fc.constantFrom(...HOST_POOL), hostilePath, hostile),
      options: fc.uniqueArray(mountOption, { maxLength: 4 }),
    },
    { requiredKeys: hostile ? ['destination'] : ['destination', 'type', 'source'] },
  );
}

export interface SpecShape {
  readonly mounts: readonly unknown[];
  readonly annotations: Readonly<Record<string, string>>;
  readonly cpu: Record<string, unknown> | null;
  readonly memoryLimit: number | null;
  readonly devices: readonly unknown[];
  readonly cgroupsPath: string | null;
  readonly rootPath: string;
  readonly extra: unknown;
  readonly containerType: string | null;
}

/**
 * The pieces of one spec; `count` bounds the mount and device lists. `hostile` mixes hostile
 * values into every field (one in five); off, the spec is well-formed apart from names.
 */
export function specShape(count: number, hostile = true): fc.Arbitrary<SpecShape> {
  return fc.record({
    mounts: fc.array(mount(hostile), { maxLength: count }),
    annotations: fc.dictionary(
      annotationKey,
      mix(calmAnnotationValue, annotationValue, hostile, 2),
      { maxKeys: 4 },
    ),
    cpu: fc.option(cpu(hostile), { freq: 3 }),
    memoryLimit: fc.option(mix(fc.integer({ min: 1, max: 2 ** 40 }), hostileNumber, hostile)),
    devices: fc.array(device(hostile), { maxLength: Math.max(1, count >> 2) }),
    cgroupsPath: fc.option(
      mix(
        fc.constantFrom('/kata/sb', 'kubepods.slice:cri-containerd:sb', 'pod/x'),
        fc.oneof(fc.constantFrom('a/../..', ''), hostilePath),
        hostile,
      ),
    ),
    rootPath: mix(fc.constant('rootfs'), hostilePath, hostile),
    extra: hostile ? fc.option(deep, { freq: 8 }) : fc.constant(null),
    containerType: fc.option(fc.constantFrom('sandbox', 'container', 'pod_sandbox', 'bogus'), {
      freq: 4,
    }),
  });
}

/** config.json text of a spec built from the example and `s`. */
export function specText(s: SpecShape, sandboxId: string): string {
  const spec = structuredClone(EXAMPLE_SPEC);
  spec.mounts = [...s.mounts];
  spec.annotations = {
    ...spec.annotations,
    'io.kubernetes.cri.sandbox-id': sandboxId,
    'io.kubernetes.cri.image-name': 'example-image',
    ...s.annotations,
  };
  if (s.containerType !== null)
    spec.annotations['io.kubernetes.cri.container-type'] = s.containerType;
  spec.linux.resources = {
    ...(s.cpu ? { cpu: s.cpu } : {}),
    ...(s.memoryLimit !== null ? { memory: { limit: s.memoryLimit } } : {}),
  };
  spec.linux.devices = s.devices;
  if (s.cgroupsPath !== null) spec.linux.cgroupsPath = s.cgroupsPath;
  spec.root.path = s.rootPath;
  if (s.extra !== null) spec.vendorExtension = s.extra;
  return JSON.stringify(spec);
}

const pathKind = fc.constantFrom<PathFact['kind']>(
  'file',
  'dir',
  'dir',
  'block',
  'char',
  'missing',
  'socket',
);
const pathFact: fc.Arbitrary<PathFact> = fc.record(
  {
    kind: pathKind,
    mode: fc.constantFrom(0o100644, 0o40755, 0o60660, 0),
    uid: fc.constantFrom(0, 1000, 2 ** 32 - 1),
    gid: fc.constantFrom(0, 2000),
    ino: fc.nat(),
    rdev: fc.record({ major: fc.constantFrom(8, 253, 1), minor: fc.constantFrom(16, 32, 3, 0) }),
    realpath: fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...HOST_POOL) },
      { weight: 1, arbitrary: hostilePath },
    ),
    fsType: fc.constantFrom('tmpfs', 'ext4', 'xfs'),
    fsSizeBytes: fc.oneof(fc.constantFrom(268435456, 0, 2 ** 53 - 1), fc.nat()),
    fileCount: fc.integer({ min: -1, max: 9 }),
  },
  { requiredKeys: ['kind', 'mode', 'uid', 'gid', 'ino'] },
);

/** What a real host would say about the pool: devices are block nodes, files are files, the rest dirs. */
function calmFact(p: string): PathFact {
  const base = { mode: 0o40755, uid: 0, gid: 0, ino: p.length, realpath: p };
  if (p === '/dev/sdb' || p === '/dev/sdc')
    return {
      ...base,
      kind: 'block',
      mode: 0o60660,
      rdev: { major: 8, minor: p === '/dev/sdb' ? 16 : 32 },
    };
  if (p.endsWith('file') || p.endsWith('.conf') || p.includes('snapshots'))
    return { ...base, kind: 'file', mode: 0o100644 };
  if (p === '/dev/shm' || p === '/tmp/e')
    return { ...base, kind: 'dir', fsType: 'tmpfs', fsSizeBytes: 268435456 };
  return { ...base, kind: 'dir', ...(p.includes('kubernetes.io~') ? { fileCount: 2 } : {}) };
}
const CALM_PATHS: Record<string, PathFact> = Object.fromEntries(
  HOST_POOL.map((p) => [p, calmFact(p)]),
);
const CALM_BLOCKS = {
  '8:16': { path: '/dev/sdb', readOnly: false },
  '8:32': { path: '/dev/sdc', readOnly: true },
};

/** Host facts; `hostile` overlays random facts (bad realpaths, wrong kinds, odd counts) on the calm ones. */
export function hostFactsArb(hostile = true): fc.Arbitrary<HostFacts> {
  return fc.record(
    {
      cgroupVersion: fc.constantFrom('v1', 'v2'),
      hostCpus: mix(fc.integer({ min: 1, max: 256 }), fc.constantFrom(0, -1, 4096), hostile),
      hostMemoryMiB: mix(fc.integer({ min: 1024, max: 1 << 20 }), fc.constantFrom(0, 1), hostile),
      guestProtection: fc.constantFrom('none', 'none', 'tdx', 'snp', 'se', 'cca'),
      blockDevices: mix(
        fc.constant(CALM_BLOCKS),
        fc.dictionary(
          fc.constantFrom('8:16', '8:32', '253:3', '1:3', '253:0'),
          fc.record({
            path: fc.oneof(fc.constantFrom('/dev/sdb', '/dev/sdc', '/dev/dm-3'), hostilePath),
            readOnly: fc.boolean(),
          }),
        ),
        hostile,
        2,
      ),
      paths: mix(
        fc.constant(CALM_PATHS),
        fc
          .dictionary(
            fc.constantFrom(...HOST_POOL, '/data', '/dev/xdata', '/var/lib/kubelet'),
            pathFact,
          )
          .map((d) => ({ ...CALM_PATHS, ...d })),
        hostile,
        2,
      ),
      rootlessDir: mix(
        fc.constant('/run/user/1000'),
        fc.constantFrom('run/user/1', '/a/../b', '', '/ü/😀'),
        hostile,
      ),
    },
    {
      requiredKeys: [
        'cgroupVersion',
        'hostCpus',
        'hostMemoryMiB',
        'guestProtection',
        'blockDevices',
        'paths',
      ],
    },
  );
}

/** A TOML literal for a hostile value. */
const tomlValue = fc.oneof(
  hostileNumber.map((n) =>
    Number.isInteger(n) && Math.abs(n) < 2 ** 63
      ? BigInt(n).toString()
      : String(n).replace('Infinity', 'inf'),
  ),
  fc.constantFrom(
    'true',
    'false',
    'nan',
    'inf',
    '-inf',
    '"0.75"',
    '"1.5"',
    '"-1"',
    '""',
    '[]',
    '["a"]',
    '[".*"]',
    '["["]',
    '["(?<"]',
    '{}',
  ),
  fc.constantFrom(
    '"virtio-blk-pci"',
    '"virtio-scsi"',
    '"virtio-blk-ccw"',
    '"virtio-blk-mmio"',
    '"virtio-pmem"',
    '"none"',
    '"virtio-fs"',
    '"native"',
    '"threads"',
    '"io_uring"',
  ),
  fc.string({ unit: 'binary', maxLength: 10 }).map((s) => JSON.stringify(s)),
  controlText.map((s) => JSON.stringify(s)),
);
const hvKey = fc.constantFrom(
  'default_vcpus',
  'overhead_vcpus',
  'default_maxvcpus',
  'default_memory',
  'overhead_memory',
  'default_maxmemory',
  'block_device_driver',
  'block_device_aio',
  'shared_fs',
  'pcie_root_port',
  'pcie_switch_port',
  'rootless',
  'enable_annotations',
  'valid_hypervisor_paths',
  'initdata',
  'memory_slots',
  'block_device_logical_sector_size',
  'disable_block_device_use',
  'kernel_params',
  'guest_hook_path',
);
const runtimeKey = fc.constantFrom(
  'static_sandbox_resource_mgmt',
  'sandbox_cgroup_only',
  'experimental',
  'experimental_force_guest_pull',
  'kubelet_root_dir',
  'allow_any_copy_directory',
);

/** One `[section] key = value` edit. */
export const configEdit = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.constant('hypervisor.qemu'), hvKey, tomlValue) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('runtime'), runtimeKey, tomlValue) },
);

/** Safe edits that keep a config usable, so most runs reach the planner. */
export const usefulEdit = fc.oneof(
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('enable_annotations'),
    fc.constantFrom('[".*"]', '["default_vcpus", "rootless", "cc_init_data"]', '[]'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('default_vcpus'),
    fc.constantFrom('1', '"0.5"', '"0.25"', '2', '"1.75"', '0'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('block_device_driver'),
    fc.constantFrom(
      '"virtio-scsi"',
      '"virtio-blk-pci"',
      '"virtio-blk-mmio"',
      '"virtio-blk-ccw"',
      '"virtio-pmem"',
    ),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('pcie_root_port'),
    fc.constantFrom('0', '2', '8'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('shared_fs'),
    fc.constantFrom('"virtio-fs"', '"none"'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('rootless'),
    fc.constantFrom('true', 'false'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('initdata'),
    fc.constantFrom('"algorithm = \\"sha384\\"\\nversion = \\"0.1.0\\"\\n[data]\\n"', '"x = "'),
  ),
  fc.tuple(
    fc.constant('runtime'),
    fc.constant('experimental'),
    fc.constantFrom('["force_guest_pull"]', '[]'),
  ),
  fc.tuple(
    fc.constant('runtime'),
    fc.constant('static_sandbox_resource_mgmt'),
    fc.constantFrom('true', 'false'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('overhead_vcpus'),
    fc.constantFrom('0', '"0.5"', '1', '"0.125"'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('overhead_memory'),
    fc.constantFrom('0', '128', '300'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('default_maxmemory'),
    fc.constantFrom('0', '300', '4096'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('default_maxvcpus'),
    fc.constantFrom('0', '2', '8'),
  ),
  fc.tuple(
    fc.constant('hypervisor.qemu'),
    fc.constant('valid_hypervisor_paths'),
    fc.constantFrom(
      '["/usr/bin/qemu-*"]',
      '["/usr/bin/qemu-[!a]*"]',
      '["/usr/bin/[q"]',
      '["/usr/bin/[z-a]*"]',
    ),
  ),
);

/** The example configuration with `edits` applied (a key set twice: the last edit wins). */
export function configText(edits: readonly (readonly [string, string, string])[]): string {
  let text = EXAMPLE_CONFIG_TEXT;
  for (const [section, key, value] of edits) {
    const header = `\n[${section}]\n`;
    const at = text.indexOf(header);
    const end = text.indexOf('\n[', at + header.length - 1);
    const body = text.slice(at, end < 0 ? undefined : end);
    const line = new RegExp(`^${key}\\s*=.*$`, 'm');
    const edited = line.test(body)
      ? body.replace(line, () => `${key} = ${value}`)
      : `${body.trimEnd()}\n${key} = ${value}\n`;
    text = text.slice(0, at) + edited + (end < 0 ? '' : text.slice(end));
  }
  return text;
}

export { containerId };
