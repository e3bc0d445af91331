import { readFileSync } from 'node:fs';
import test from 'ava';
import { TEMPLATE_ENABLE_ANNOTATIONS } from '../../ts/config/config-defaults.js';
import { defaultKataConfig, parseKataConfig } from '../../ts/config/parse-config.js';
import { SHARED_FS_KINDS, type BlockAio } from '../../ts/config/kata-config.js';
import type { PlanError } from '../../ts/errors.js';

const SOURCE = '/etc/kata-containers/configuration.toml';

/** A `[hypervisor.qemu]` section with the given body lines. */
const qemu = (...lines: string[]): string => `[hypervisor.qemu]\n${lines.join('\n')}\n`;

function parseOk(text: string) {
  const r = parseKataConfig(text, SOURCE);
  if (r.isErr()) throw new Error(`unexpected error: ${JSON.stringify(r.error)}`);
  return r.value;
}

function parseErr(text: string): PlanError {
  const r = parseKataConfig(text, SOURCE);
  if (r.isOk()) throw new Error('expected an error');
  return r.error;
}

/** The messages of every problem, one per line, for `includes` checks. */
const messages = (e: PlanError): string => e.problems.map((p) => p.message).join('\n');

test('an empty file gives the defaults with no warnings', (t) => {
  const { config, warnings } = parseOk('');
  t.deepEqual(config, defaultKataConfig());
  t.deepEqual(warnings, []);
});

test('defaults follow the runtime-rs qemu template', (t) => {
  const { hypervisor: h, agent, runtime } = defaultKataConfig();
  t.is(h.path, '/usr/bin/qemu-system-x86_64');
  t.is(h.defaultVcpus, '1');
  t.is(h.defaultMemoryMiB, 2048);
  t.is(h.blockDeviceDriver, 'virtio-scsi');
  t.is(h.blockDeviceAio, 'io_uring');
  t.is(h.sharedFs, 'virtio-fs');
  t.is(h.memorySlots, 128);
  t.is(agent.dialTimeoutSecs, 45);
  t.true(runtime.sandboxCgroupOnly);
  t.is(runtime.kubeletRootDir, '/var/lib/kubelet');
  t.false(runtime.allowAnyCopyDirectory);
  t.is(runtime.copyWatchDebounceMs, 500);
});

test('the example configuration-qemu.toml parses to the defaults, with the template enable_annotations, guest seccomp on, and zero warnings', (t) => {
  const text = readFileSync(
    new URL('../../examples/configuration-qemu.toml', import.meta.url),
    'utf8',
  );
  const { config, warnings } = parseOk(text);
  t.deepEqual(warnings, []);
  const d = defaultKataConfig();
  t.deepEqual(config, {
    ...d,
    // The template sets default_bridges = 1 (@DEFBRIDGES@); absent, kata-types reads 0.
    hypervisor: {
      ...d.hypervisor,
      enableAnnotations: [...TEMPLATE_ENABLE_ANNOTATIONS],
      defaultBridges: 1,
    },
    // The example enforces the container's seccomp profile in the guest (the template: true).
    runtime: { ...d.runtime, disableGuestSeccomp: false },
  });
});

test('enable_annotations absent enables no annotation (kata-types default: an empty list)', (t) => {
  t.deepEqual(parseOk('[hypervisor.qemu]\n').config.hypervisor.enableAnnotations, []);
  t.deepEqual(parseOk('').config.hypervisor.enableAnnotations, []);
  t.deepEqual(
    parseOk('[hypervisor.qemu]\nenable_annotations = ["default_vcpus"]\n').config.hypervisor
      .enableAnnotations,
    ['default_vcpus'],
  );
});

test('a TOML syntax error names line and column', (t) => {
  const e = parseErr('[hypervisor.qemu]\npath = "/usr/bin/qemu\n');
  t.is(e.problems.length, 1);
  const p = e.problems[0]!;
  t.is(p.kind, 'config');
  t.is(p.source, SOURCE);
  t.regex(p.field, /^\d+:\d+$/);
  t.regex(p.message, /line 2, column \d+/);
});

// vectors.md §1.9: sector sizes
for (const size of [0, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]) {
  test(`sector size ${size} is accepted`, (t) => {
    const { config } = parseOk(
      qemu(
        `block_device_logical_sector_size = ${size}`,
        `block_device_physical_sector_size = ${size}`,
      ),
    );
    t.is(config.hypervisor.blockDeviceLogicalSectorSize, size);
  });
}
for (const size of [3, 100, 1000, 3000, 5000, 1, 256, 131072, 1048576]) {
  test(`sector size ${size} is rejected naming the key`, (t) => {
    const e = parseErr(qemu(`block_device_physical_sector_size = ${size}`));
    t.is(e.problems[0]?.field, 'hypervisor.qemu.block_device_physical_sector_size');
    t.true(
      messages(e).includes(
        `invalid sector size ${size}: must be 0 or a power of 2 between 512 and 65536`,
      ),
    );
  });
}
for (const [logical, physical] of [
  [0, 0],
  [512, 0],
  [0, 4096],
  [512, 4096],
  [4096, 4096],
  [512, 512],
] as const) {
  test(`sector sizes logical ${logical} / physical ${physical} are accepted`, (t) => {
    const { config } = parseOk(
      qemu(
        `block_device_logical_sector_size = ${logical}`,
        `block_device_physical_sector_size = ${physical}`,
      ),
    );
    t.is(config.hypervisor.blockDevicePhysicalSectorSize, physical);
  });
}
for (const [logical, physical] of [
  [4096, 512],
  [4096, 1024],
  [65536, 512],
] as const) {
  test(`logical ${logical} larger than physical ${physical} is rejected`, (t) => {
    const e = parseErr(
      qemu(
        `block_device_logical_sector_size = ${logical}`,
        `block_device_physical_sector_size = ${physical}`,
      ),
    );
    t.true(
      messages(e).includes(
        `invalid sector sizes: logical (${logical}) must not be larger than physical (${physical})`,
      ),
    );
  });
}

// vectors.md §1.9: AIO and driver (adjust_config)
const aioRows: { value: string; expected: BlockAio }[] = [
  { value: '', expected: 'io_uring' },
  { value: 'io_uring', expected: 'io_uring' },
  { value: 'native', expected: 'native' },
  { value: 'threads', expected: 'threads' },
];
for (const row of aioRows) {
  test(`block_device_aio ${JSON.stringify(row.value)} reads as ${row.expected}`, (t) => {
    t.is(
      parseOk(qemu(`block_device_aio = "${row.value}"`)).config.hypervisor.blockDeviceAio,
      row.expected,
    );
  });
}

test('block_device_aio "iouring" is refused with Kata\'s message and the allowed values', (t) => {
  const e = parseErr(qemu('block_device_aio = "iouring"'));
  const text = messages(e);
  t.true(text.includes('hypervisor.qemu.block_device_aio'));
  t.true(text.includes('iouring is unsupported block device AIO mode.'));
  t.true(text.includes('io_uring, native, threads'));
});

test('block_device_driver "" reads as virtio-blk-pci, an absent one as the template\'s virtio-scsi', (t) => {
  t.is(
    parseOk(qemu('block_device_driver = ""')).config.hypervisor.blockDeviceDriver,
    'virtio-blk-pci',
  );
  t.is(parseOk(qemu()).config.hypervisor.blockDeviceDriver, 'virtio-scsi');
});

test('block_device_driver "foo" is refused with Kata\'s message and the allowed values', (t) => {
  const text = messages(parseErr(qemu('block_device_driver = "foo"')));
  t.true(text.includes('foo is unsupported block device type.'));
  t.true(
    text.includes('virtio-blk-pci, virtio-blk-mmio, virtio-blk-ccw, virtio-scsi, virtio-pmem'),
  );
});

test('block checks are skipped when block devices are disabled, as in Kata', (t) => {
  const { config } = parseOk(
    qemu('disable_block_device_use = true', 'block_device_aio = "iouring"'),
  );
  t.true(config.hypervisor.disableBlockDeviceUse);
  t.is(config.hypervisor.blockDeviceAio, 'io_uring');
});

test("shared_fs accepts Kata's kinds and refuses others", (t) => {
  for (const kind of SHARED_FS_KINDS) {
    t.is(parseOk(qemu(`shared_fs = "${kind}"`)).config.hypervisor.sharedFs, kind);
  }
  t.is(parseOk(qemu('shared_fs = ""')).config.hypervisor.sharedFs, 'virtio-fs');
  t.true(
    messages(parseErr(qemu('shared_fs = "nfs"'))).includes(
      'hypervisor.qemu.shared_fs: Invalid shared_fs type nfs',
    ),
  );
});

// default_vcpus stays exact decimal text
const vcpuRows = [
  { toml: '1', text: '1' },
  { toml: '1.0', text: '1' },
  { toml: '0.75', text: '0.75' },
  { toml: '1.5', text: '1.5' },
  { toml: '0.1', text: '0.1' },
  { toml: '"0.75"', text: '0.75' },
  { toml: '0', text: '1' },
];
for (const row of vcpuRows) {
  test(`default_vcpus = ${row.toml} is kept as "${row.text}"`, (t) => {
    t.is(parseOk(qemu(`default_vcpus = ${row.toml}`)).config.hypervisor.defaultVcpus, row.text);
  });
}
for (const bad of ['-1', '1e-7', '"abc"', 'nan', 'inf', '"1e3"', '300', 'true']) {
  test(`default_vcpus = ${bad} is refused naming the key`, (t) => {
    const e = parseErr(qemu(`default_vcpus = ${bad}`));
    t.is(e.problems[0]?.field, 'hypervisor.qemu.default_vcpus');
  });
}

test('counts must be non-negative integers; each bad key is named', (t) => {
  const e = parseErr(
    qemu(
      'default_maxvcpus = -1',
      'pcie_root_port = 1.5',
      'default_memory = "2048"',
      'memory_slots = 99999999999999999999',
    ),
  );
  const fields = e.problems.map((p) => p.field).sort();
  t.deepEqual(fields, [
    'hypervisor.qemu.default_maxvcpus',
    'hypervisor.qemu.default_memory',
    'hypervisor.qemu.memory_slots',
    'hypervisor.qemu.pcie_root_port',
  ]);
  t.true(messages(e).includes('hypervisor.qemu.default_memory: expected a non-negative integer'));
  t.true(messages(e).includes('hypervisor.qemu.pcie_root_port: expected an integer'));
  t.true(messages(e).includes('hypervisor.qemu.default_maxvcpus: must not be negative'));
});

test('wrong TOML types name the key and the expected type', (t) => {
  const text = messages(
    parseErr(
      `${qemu('rootless = "yes"', 'enable_annotations = "x"')}[runtime]\nexperimental = [1]\n`,
    ),
  );
  t.true(text.includes('hypervisor.qemu.rootless: expected a boolean'));
  t.true(text.includes('hypervisor.qemu.enable_annotations: expected an array of strings'));
  t.true(text.includes('runtime.experimental[0]: expected a string'));
});

test('validation reports every problem, not the first', (t) => {
  const e = parseErr(
    qemu(
      'block_device_aio = "iouring"',
      'block_device_driver = "foo"',
      'default_memory = 10',
      'shared_fs = "x"',
    ),
  );
  t.is(e.problems.length, 4);
});

test("Kata's memory rules: 0 becomes 128 MiB, below 64 MiB is refused", (t) => {
  t.is(parseOk(qemu('default_memory = 0')).config.hypervisor.defaultMemoryMiB, 128);
  t.true(messages(parseErr(qemu('default_memory = 32'))).includes('minimal memory limitation 64'));
});

test('root ports and switch ports together are refused', (t) => {
  t.true(
    messages(parseErr(qemu('pcie_root_port = 2', 'pcie_switch_port = 2'))).includes(
      'Root Port and Switch Port',
    ),
  );
  t.is(parseOk(qemu('pcie_switch_port = 3')).config.hypervisor.pcieSwitchPort, 3);
});

test('unknown keys and sections are warnings naming the full key', (t) => {
  const { warnings } = parseOk(
    `${qemu('foo = 1', 'constructor = 1')}[agent.kata]\nbar = true\n[runtime]\nbaz = "x"\n[weird]\n`,
  );
  t.deepEqual(warnings, [
    'unknown section weird',
    'unknown key hypervisor.qemu.foo',
    'unknown key hypervisor.qemu.constructor',
    'unknown key agent.kata.bar',
    'unknown key runtime.baz',
  ]);
});

test('Kata keys kata-ts does not use are accepted silently but type-checked', (t) => {
  t.deepEqual(parseOk(qemu('enable_iothreads = true', 'default_bridges = 2')).warnings, []);
  t.true(
    messages(parseErr(qemu('enable_iothreads = "yes"'))).includes(
      'hypervisor.qemu.enable_iothreads: expected a boolean',
    ),
  );
});

test("initdata is read flat (Kata's layout) or from a security_info sub-table", (t) => {
  t.is(
    parseOk(qemu('initdata = "version = \\"0.1.0\\""')).config.hypervisor.initdata,
    'version = "0.1.0"',
  );
  const nested = parseOk(`${qemu()}[hypervisor.qemu.security_info]\ninitdata = "abc"\n`);
  t.is(nested.config.hypervisor.initdata, 'abc');
  t.deepEqual(nested.warnings, []);
});

test('several non-qemu hypervisor sections are an error naming hypervisor', (t) => {
  const e = parseErr('[hypervisor.clh]\n[hypervisor.dragonball]\n');
  t.is(e.problems[0]?.field, 'hypervisor');
});

test('qemu is picked among several hypervisor sections, the others are warned about', (t) => {
  const { config, warnings } = parseOk('[hypervisor.qemu]\n[hypervisor.clh]\n');
  t.is(config.hypervisor.name, 'qemu');
  t.deepEqual(warnings, ['ignored section hypervisor.clh: kata-ts reads only hypervisor.qemu']);
});

test('an initrd without an image boots the initrd; both set is refused', (t) => {
  const { config } = parseOk(
    qemu('initrd = "/usr/share/kata-containers/kata-containers-initrd.img"'),
  );
  t.is(config.hypervisor.image, '');
  const text = messages(parseErr(qemu('initrd = "/a.img"', 'image = "/b.img"')));
  t.true(text.includes('Can not configure both initrd and image for boot'));
});

test('kata-ts runtime extensions are read', (t) => {
  const { config } = parseOk(
    '[runtime]\nkubelet_root_dir = "/data/kubelet"\nallow_any_copy_directory = true\ncopy_watch_debounce_ms = 250\n',
  );
  t.is(config.runtime.kubeletRootDir, '/data/kubelet');
  t.true(config.runtime.allowAnyCopyDirectory);
  t.is(config.runtime.copyWatchDebounceMs, 250);
  t.true(
    messages(parseErr('[runtime]\nkubelet_root_dir = "kubelet"\n')).includes(
      'runtime.kubelet_root_dir',
    ),
  );
});

test('agent and runtime keys map to their fields', (t) => {
  const { config } = parseOk(
    '[agent.kata]\nenable_debug = true\ndial_timeout = 90\nkernel_modules = ["e1000e"]\n' +
      '[runtime]\nexperimental = ["force_guest_pull"]\nexperimental_force_guest_pull = true\nsandbox_cgroup_only = false\nvfio_mode = "vfio"\n',
  );
  t.true(config.agent.debug);
  t.is(config.agent.dialTimeoutSecs, 90);
  t.deepEqual(config.agent.kernelModules, ['e1000e']);
  t.deepEqual(config.runtime.experimental, ['force_guest_pull']);
  t.true(config.runtime.experimentalForceGuestPull);
  t.false(config.runtime.sandboxCgroupOnly);
  t.is(config.runtime.vfioMode, 'vfio');
});

test('an invalid enable_annotations regex is refused', (t) => {
  t.true(
    messages(parseErr(qemu('enable_annotations = ["("]'))).includes(
      'hypervisor.qemu.enable_annotations: invalid regular expression',
    ),
  );
});
