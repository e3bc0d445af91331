import { gzipSync } from 'node:zlib';
import test from 'ava';
import { TEMPLATE_ENABLE_ANNOTATIONS } from '../../ts/config/config-defaults.js';
import { defaultKataConfig } from '../../ts/config/parse-config.js';
import type { KataConfig } from '../../ts/config/kata-config.js';
import type { PlanError } from '../../ts/errors.js';
import {
  applyConfigAnnotations,
  CC_INIT_DATA_ANNOTATION,
  decodeInitdataAnnotation,
  replaceKernelParams,
  STRIPPED_ANNOTATIONS,
} from '../../ts/spec/annotations.js';

const SOURCE = '/bundle/config.json';
const HV = 'io.katacontainers.config.hypervisor.';

/** The defaults with `enable_annotations` set to `patterns`. */
function configEnabling(...patterns: string[]): KataConfig {
  const d = defaultKataConfig();
  return { ...d, hypervisor: { ...d.hypervisor, enableAnnotations: patterns } };
}

function apply(config: KataConfig, annotations: Record<string, string>) {
  const r = applyConfigAnnotations(config, annotations, SOURCE);
  if (r.isErr()) throw new Error(`unexpected error: ${JSON.stringify(r.error)}`);
  return r.value;
}

function applyErr(config: KataConfig, annotations: Record<string, string>): PlanError {
  const r = applyConfigAnnotations(config, annotations, SOURCE);
  if (r.isOk()) throw new Error('expected an error');
  return r.error;
}

const encode = (toml: string): string => gzipSync(Buffer.from(toml)).toString('base64');

test('an enabled hypervisor annotation overrides the config', (t) => {
  const { config, warnings } = apply(configEnabling(...TEMPLATE_ENABLE_ANNOTATIONS), {
    [`${HV}default_vcpus`]: '0.75',
    [`${HV}default_memory`]: '4096',
  });
  t.is(config.hypervisor.defaultVcpus, '0.75');
  t.is(config.hypervisor.defaultMemoryMiB, 4096);
  t.deepEqual(warnings, []);
});

test('with enable_annotations absent no hypervisor annotation applies, not even the template list (default_vcpus stays 1)', (t) => {
  const { config, warnings } = apply(defaultKataConfig(), {
    [`${HV}default_vcpus`]: '2',
    [`${HV}kernel_params`]: 'init=/bin/sh',
  });
  t.is(config.hypervisor.defaultVcpus, '1');
  t.is(config.hypervisor.kernelParams, '');
  t.is(warnings.length, 2);
  t.true(
    warnings.every((w) => w.includes('not enabled by hypervisor.qemu.enable_annotations')),
    warnings.join('\n'),
  );
});

test('a hypervisor annotation not enabled is ignored with a warning naming it', (t) => {
  const { config, warnings } = apply(defaultKataConfig(), {
    [`${HV}block_device_driver`]: 'virtio-blk-pci',
  });
  t.is(config.hypervisor.blockDeviceDriver, 'virtio-scsi');
  t.is(warnings.length, 1);
  t.true(warnings[0]!.includes(`${HV}block_device_driver`));
});

test('enable_annotations patterns match anywhere in the key, as in Kata', (t) => {
  const { config } = apply(configEnabling('block_device'), {
    [`${HV}block_device_driver`]: 'virtio-blk-pci',
    [`${HV}block_device_aio`]: 'native',
  });
  t.is(config.hypervisor.blockDeviceDriver, 'virtio-blk-pci');
  t.is(config.hypervisor.blockDeviceAio, 'native');
  t.true(apply(configEnabling('.*'), { [`${HV}rootless`]: 'true' }).config.hypervisor.rootless);
});

const hypervisorRows: {
  key: string;
  value: string;
  read: (c: KataConfig) => unknown;
  expected: unknown;
}[] = [
  { key: 'default_max_vcpus', value: '8', read: (c) => c.hypervisor.defaultMaxVcpus, expected: 8 },
  {
    key: 'default_memory',
    value: '2Gi',
    read: (c) => c.hypervisor.defaultMemoryMiB,
    expected: 2048,
  },
  {
    key: 'default_memory',
    value: '512MiB',
    read: (c) => c.hypervisor.defaultMemoryMiB,
    expected: 512,
  },
  {
    key: 'block_device_cache_direct',
    value: 'true',
    read: (c) => c.hypervisor.blockDeviceCacheDirect,
    expected: true,
  },
  { key: 'pcie_root_port', value: '4', read: (c) => c.hypervisor.pcieRootPort, expected: 4 },
  { key: 'pcie_switch_port', value: '2', read: (c) => c.hypervisor.pcieSwitchPort, expected: 2 },
  { key: 'shared_fs', value: ' none ', read: (c) => c.hypervisor.sharedFs, expected: 'none' },
  { key: 'rootless', value: 'true', read: (c) => c.hypervisor.rootless, expected: true },
  {
    key: 'kernel_params',
    value: 'quiet agent.log=debug',
    read: (c) => c.hypervisor.kernelParams,
    expected: 'quiet agent.log=debug',
  },
  {
    key: 'virtio_fs_extra_args',
    value: '--a,--b',
    read: (c) => c.hypervisor.virtioFsExtraArgs.slice(-2),
    expected: ['--a', '--b'],
  },
];
for (const row of hypervisorRows) {
  test(`enabled annotation ${row.key}=${JSON.stringify(row.value)} applies`, (t) => {
    t.deepEqual(
      row.read(apply(configEnabling('.*'), { [HV + row.key]: row.value }).config),
      row.expected,
    );
  });
}

test('an enabled hypervisor annotation Kata does not know (default_maxvcpus; Kata spells it default_max_vcpus) is an error', (t) => {
  const e = applyErr(configEnabling('.*'), { [`${HV}default_maxvcpus`]: '8' });
  t.is(e.problems[0]?.field, `${HV}default_maxvcpus`);
  t.true(e.problems[0]!.message.includes('Invalid annotation type'));
});

const invalidRows: { key: string; value: string; says: string }[] = [
  { key: 'default_vcpus', value: 'abc', says: 'is not a decimal number' },
  {
    key: 'default_vcpus',
    value: '300',
    says: 'Vcpus specified in annotation 300 is more than maximum limitation 256',
  },
  { key: 'default_memory', value: '32', says: 'less than minimum limitation 64' },
  { key: 'default_memory', value: 'lots', says: 'is not a memory size' },
  { key: 'default_memory', value: '4constructor', says: 'is not a memory size' },
  { key: 'block_device_driver', value: 'foo', says: 'foo is unsupported block device type.' },
  {
    key: 'block_device_aio',
    value: 'iouring',
    says: 'iouring is unsupported block device AIO mode.',
  },
  { key: 'block_device_cache_direct', value: 'yes', says: 'is not a boolean' },
  { key: 'pcie_root_port', value: '-1', says: 'is not an integer' },
  { key: 'shared_fs', value: 'nfs', says: 'Invalid shared_fs type nfs' },
  { key: 'kernel', value: 'vmlinux', says: 'must be an absolute path' },
];
for (const row of invalidRows) {
  test(`invalid annotation ${row.key}=${JSON.stringify(row.value)} is an error naming the key`, (t) => {
    const e = applyErr(configEnabling('.*'), { [HV + row.key]: row.value });
    t.is(e.problems.length, 1);
    t.is(e.problems[0]?.kind, 'annotation');
    t.is(e.problems[0]?.field, HV + row.key);
    t.true(e.problems[0]!.message.startsWith(`${HV}${row.key}: `));
    t.true(e.problems[0]!.message.includes(row.says), e.problems[0]!.message);
  });
}

test('every invalid annotation is reported', (t) => {
  const e = applyErr(configEnabling('.*'), {
    [`${HV}block_device_aio`]: 'x',
    [`${HV}rootless`]: 'y',
    'io.katacontainers.config.runtime.sandbox_cgroup_only': 'z',
  });
  t.is(e.problems.length, 3);
});

test('root and switch ports set together by annotations are refused', (t) => {
  const e = applyErr(configEnabling('pcie'), {
    [`${HV}pcie_root_port`]: '2',
    [`${HV}pcie_switch_port`]: '2',
  });
  t.true(e.problems[0]!.message.includes('Root Port and Switch Port'));
});

test('the path annotation must match valid_hypervisor_paths', (t) => {
  t.is(
    apply(configEnabling('^path$'), { [`${HV}path`]: '/usr/bin/qemu-system-x86_64' }).config
      .hypervisor.path,
    '/usr/bin/qemu-system-x86_64',
  );
  t.true(
    applyErr(configEnabling('^path$'), {
      [`${HV}path`]: '/tmp/evil',
    }).problems[0]!.message.includes('valid_hypervisor_paths'),
  );
});

test('agent and runtime annotations apply without enable_annotations', (t) => {
  const { config, warnings } = apply(defaultKataConfig(), {
    'io.katacontainers.config.agent.kernel_modules': 'e1000e EEE=1; i915',
    'io.katacontainers.config.runtime.experimental': 'force_guest_pull',
    'io.katacontainers.config.runtime.experimental_force_guest_pull': 'true',
    'io.katacontainers.config.runtime.sandbox_cgroup_only': 'false',
  });
  t.deepEqual(config.agent.kernelModules, ['e1000e EEE=1', 'i915']);
  t.deepEqual(config.runtime.experimental, ['force_guest_pull']);
  t.true(config.runtime.experimentalForceGuestPull);
  t.false(config.runtime.sandboxCgroupOnly);
  t.deepEqual(warnings, []);
});

test('unknown kata config annotations are warnings; other annotations are not looked at', (t) => {
  const { warnings } = apply(defaultKataConfig(), {
    'io.katacontainers.config.runtime.bogus': 'x',
    'io.katacontainers.config.agent.dial_timeout': '5',
    'io.kubernetes.cri.container-type': 'sandbox',
  });
  t.deepEqual(warnings, [
    'annotation io.katacontainers.config.agent.dial_timeout ignored: not enabled',
    'annotation io.katacontainers.config.runtime.bogus ignored: not enabled',
  ]);
});

test('the input config is not modified', (t) => {
  const config = configEnabling('.*');
  const before = JSON.stringify(config);
  apply(config, {
    [`${HV}default_vcpus`]: '2',
    'io.katacontainers.config.agent.kernel_modules': 'x',
  });
  t.is(JSON.stringify(config), before);
});

test('kernel_params annotations replace parameters with the same key (replace_kernel_params)', (t) => {
  t.is(replaceKernelParams('quiet a=1 b=2', 'a=3 c'), 'quiet b=2 a=3 c');
  t.is(replaceKernelParams('quiet a=1', ''), 'quiet a=1');
  t.is(replaceKernelParams('', 'x=1'), 'x=1');
});

// vectors.md §7.2 "Annotation decode"
const TOML = 'algorithm = "sha512"\nversion = "0.1.0"\n\n[data]\nhypervisor_key = "config_value"\n';

test('cc_init_data "" leaves initdata empty', (t) => {
  t.is(decodeInitdataAnnotation('')._unsafeUnwrap(), '');
  t.is(
    apply(configEnabling('cc_init_data'), { [CC_INIT_DATA_ANNOTATION]: '' }).config.hypervisor
      .initdata,
    '',
  );
});

test('cc_init_data round trip gives the raw TOML text', (t) => {
  const { config } = apply(configEnabling('cc_init_data'), {
    [CC_INIT_DATA_ANNOTATION]: encode(TOML),
  });
  t.is(config.hypervisor.initdata, TOML);
  t.true(config.hypervisor.initdata.includes('hypervisor_key = "config_value"\n'));
  t.true(config.hypervisor.initdata.includes('algorithm = "sha512"\n'));
});

test('cc_init_data with an empty [data] table decodes', (t) => {
  t.is(
    decodeInitdataAnnotation(encode('algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n'))
      ._unsafeUnwrap()
      .includes('[data]'),
    true,
  );
});

for (const bad of ['This is not valid base64!', 'invalid_base64!!', 'QUJD\nREVG', 'QUJDRA']) {
  test(`cc_init_data ${JSON.stringify(bad)} fails with "base64 decode"`, (t) => {
    const e = applyErr(configEnabling('cc_init_data'), { [CC_INIT_DATA_ANNOTATION]: bad });
    t.is(e.problems[0]?.field, CC_INIT_DATA_ANNOTATION);
    t.true(e.problems[0]!.message.includes('base64 decode'), e.problems[0]!.message);
  });
}

test('cc_init_data of base64 but not gzip fails with "gz decoder failed"', (t) => {
  const value = Buffer.from('This is not gzipped content').toString('base64');
  t.true(decodeInitdataAnnotation(value)._unsafeUnwrapErr().includes('gz decoder failed'));
});

test('cc_init_data is ignored unless enabled (the default list does not enable it)', (t) => {
  const { config, warnings } = apply(defaultKataConfig(), {
    [CC_INIT_DATA_ANNOTATION]: encode(TOML),
  });
  t.is(config.hypervisor.initdata, '');
  t.true(warnings[0]!.includes(CC_INIT_DATA_ANNOTATION));
});

test('the cc_init_data annotation is stripped from the spec sent to the agent', (t) => {
  t.deepEqual(STRIPPED_ANNOTATIONS, ['io.katacontainers.config.hypervisor.cc_init_data']);
});
