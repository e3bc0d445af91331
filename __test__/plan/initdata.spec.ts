// vectors.md §7.2 (validation and digests) and the initdata device in the plan.
import test from 'ava';
import type { Problem } from '../../ts/errors.js';
import { hostConst } from '../../ts/paths.js';
import { BlockDevicePlanner } from '../../ts/plan/devices.js';
import {
  adjustDigest,
  calculateDigest,
  INITDATA_ANNOTATION,
  initdataDigest,
  parseInitdata,
  planInitdata,
  readInitdataImage,
  type ProtectedPlatform,
} from '../../ts/plan/initdata.js';
import { planPorts } from '../../ts/plan/ports.js';

const what = (p: Problem): string => p.message.slice(p.field.length + 2);
const SHA384_EMPTY = 'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n';
const SHA256_KV = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';

// §7.2 digest helpers
test('digest lengths: sha256 32, sha384 48, sha512 64 bytes', (t) => {
  t.is(calculateDigest('sha256', 'test_data')._unsafeUnwrap().length, 32);
  t.is(calculateDigest('sha384', 'test_data')._unsafeUnwrap().length, 48);
  t.is(calculateDigest('sha512', 'test_data')._unsafeUnwrap().length, 64);
});

test('md5 is not an initdata hash algorithm', (t) => {
  t.is(
    what(calculateDigest('md5', 'test_data')._unsafeUnwrapErr()),
    'unsupported Hash algorithm: md5',
  );
});

test('a 64-byte digest is cut to 48 for TDX and 32 for SNP', (t) => {
  const d = new Uint8Array(64).fill(0xaa);
  t.deepEqual(adjustDigest(d, 'tdx'), new Uint8Array(48).fill(0xaa));
  t.deepEqual(adjustDigest(d, 'snp'), new Uint8Array(32).fill(0xaa));
});

test('a 32-byte digest is zero-padded to 64 for CCA', (t) => {
  const out = adjustDigest(new Uint8Array(32).fill(0xbb), 'cca');
  t.deepEqual(out.subarray(0, 32), new Uint8Array(32).fill(0xbb));
  t.deepEqual(out.subarray(32), new Uint8Array(32));
});

test('a 256-byte digest stays 256 for SE; no protection keeps the natural length', (t) => {
  t.deepEqual(adjustDigest(new Uint8Array(256).fill(0xaa), 'se'), new Uint8Array(256).fill(0xaa));
  t.is(adjustDigest(new Uint8Array(48), 'none').length, 48);
});

// §7.2 golden digests
const golden: [string, string, 'sha256' | 'sha384', ProtectedPlatform, string][] = [
  [
    'sha384 empty data',
    SHA384_EMPTY,
    'sha384',
    'tdx',
    '+8cAFIPVRXEQouN+bRtEhFRmODd4xZiu7bZKshP2Tqzz6rqsFrns2Orv775mwGBM',
  ],
  [
    'sha384 empty data',
    SHA384_EMPTY,
    'sha384',
    'none',
    '+8cAFIPVRXEQouN+bRtEhFRmODd4xZiu7bZKshP2Tqzz6rqsFrns2Orv775mwGBM',
  ],
  [
    'sha384 empty data',
    SHA384_EMPTY,
    'sha384',
    'snp',
    '+8cAFIPVRXEQouN+bRtEhFRmODd4xZiu7bZKshP2Tqw=',
  ],
  [
    'sha384 empty data',
    SHA384_EMPTY,
    'sha384',
    'cca',
    '+8cAFIPVRXEQouN+bRtEhFRmODd4xZiu7bZKshP2Tqzz6rqsFrns2Orv775mwGBMAAAAAAAAAAAAAAAAAAAAAA==',
  ],
  [
    'sha256 key = value',
    SHA256_KV,
    'sha256',
    'none',
    'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294=',
  ],
  [
    'sha256 key = value',
    SHA256_KV,
    'sha256',
    'snp',
    'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294=',
  ],
  [
    'sha256 key = value',
    SHA256_KV,
    'sha256',
    'tdx',
    'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294AAAAAAAAAAAAAAAAAAAAA',
  ],
];
for (const [name, toml, alg, platform, expected] of golden) {
  test(`golden digest: ${name} for ${platform}`, (t) => {
    t.is(initdataDigest(toml, alg, platform), expected);
  });
}

test('the digest is over the raw text: reformatting the same TOML changes it', (t) => {
  const reordered = 'version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\n';
  t.not(
    initdataDigest(reordered, 'sha384', 'none'),
    initdataDigest(SHA384_EMPTY, 'sha384', 'none'),
  );
});

// §7.2 parse_initdata
test('valid initdata parses into version, algorithm and data', (t) => {
  const toml =
    '\n  version = "0.1.0"\n  algorithm = "sha384"\n\n  [data]\n  valid_key = "valid_value"\n';
  t.deepEqual(parseInitdata(toml)._unsafeUnwrap(), {
    version: '0.1.0',
    algorithm: 'sha384',
    data: { valid_key: 'valid_value' },
  });
});

test('initdata without a version is refused', (t) => {
  const e = parseInitdata('algorithm = "sha256"\n\n[data]\nkey = "value"\n')._unsafeUnwrapErr();
  t.deepEqual(e.problems.map(what), ['missing field `version`']);
  t.is(e.problems[0]?.field, 'hypervisor.qemu.initdata');
});

test('an unsupported version names the expected one', (t) => {
  const e = parseInitdata('version = "0.2.0"\nalgorithm = "sha256"\n[data]\n')._unsafeUnwrapErr();
  t.deepEqual(e.problems.map(what), ['unsupported version: 0.2.0, expected: 0.1.0']);
});

test('an unsupported algorithm lists the supported ones', (t) => {
  const e = parseInitdata('version = "0.1.0"\nalgorithm = "md5"\n[data]\n')._unsafeUnwrapErr();
  t.deepEqual(e.problems.map(what), [
    'unsupported algorithm: md5, supported algorithms: sha256, sha384, sha512',
  ]);
});

test('every problem is reported: version, algorithm, data', (t) => {
  const e = parseInitdata('version = "1"\nalgorithm = "md5"\n')._unsafeUnwrapErr();
  t.deepEqual(e.problems.map(what), [
    'unsupported version: 1, expected: 0.1.0',
    'unsupported algorithm: md5, supported algorithms: sha256, sha384, sha512',
    'missing field `data`',
  ]);
});

test('data values must be strings', (t) => {
  const e = parseInitdata(
    'version = "0.1.0"\nalgorithm = "sha256"\n[data]\nn = 1\n',
  )._unsafeUnwrapErr();
  t.deepEqual(e.problems.map(what), ['data.n must be a string']);
});

test('TOML syntax errors are reported against the origin', (t) => {
  const origin = { field: INITDATA_ANNOTATION, source: '/bundle/config.json' };
  const p = parseInitdata('version = ', origin)._unsafeUnwrapErr().problems[0];
  t.is(p?.field, INITDATA_ANNOTATION);
  t.is(p?.source, '/bundle/config.json');
  t.regex(p?.message ?? '', /invalid initdata TOML/);
});

// planInitdata
const planner = (
  driver: 'virtio-blk-pci' | 'virtio-scsi' = 'virtio-blk-pci',
  aio: 'native' | 'threads' = 'threads',
) =>
  new BlockDevicePlanner(
    { blockDeviceDriver: driver, blockDeviceAio: aio, blockDeviceCacheDirect: false },
    planPorts({ machineType: 'q35', pcieRootPort: 0, pcieSwitchPort: 0 })._unsafeUnwrap(),
  );

test('no initdata: no plan and no device', (t) => {
  const devices = planner();
  t.is(planInitdata({ initdata: '' }, 'tdx', devices, 'sb1')._unsafeUnwrap(), null);
  t.deepEqual(devices.devices(), []);
});

test('initdata becomes a read-only cold-plugged disk with digest and image', (t) => {
  const plan = planInitdata(
    { initdata: SHA256_KV },
    'tdx',
    planner('virtio-blk-pci', 'native'),
    'sb1',
  )._unsafeUnwrap();
  t.truthy(plan);
  if (plan === null) return;
  t.is(plan.digest, 'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294AAAAAAAAAAAAAAAAAAAAA');
  t.is(plan.algorithm, 'sha256');
  t.is(plan.hostPath, hostConst('/run/kata-containers/shared/initdata/sb1/initdata.image'));
  t.is(plan.driver, 'virtio-blk-pci');
  t.like(plan.device, {
    readOnly: true,
    hotplug: false,
    aio: 'native',
    directIo: true,
    pathOnHost: plan.hostPath,
    pciPath: '08',
  });
  const image = new Uint8Array(Buffer.from(plan.imageBase64, 'base64'));
  t.is(image.length, plan.imageBytes);
  t.is(image.length % 512, 0);
  t.is(readInitdataImage(image)._unsafeUnwrap(), SHA256_KV);
});

test('the initdata disk uses the configured driver and AIO, SCSI included', (t) => {
  const plan = planInitdata(
    { initdata: SHA384_EMPTY },
    'snp',
    planner('virtio-scsi', 'threads'),
    'sb1',
  )._unsafeUnwrap();
  t.like(plan?.device, {
    driver: 'virtio-scsi',
    agentDriver: 'scsi',
    scsiAddr: '0:0',
    aio: 'threads',
    directIo: false,
  });
});

test('rootless: the image path is below the rootless dir', (t) => {
  const plan = planInitdata({ initdata: SHA384_EMPTY }, 'none', planner(), 'sb1', {
    rootlessDir: hostConst('/run/user/1000'),
  })._unsafeUnwrap();
  t.is(
    plan?.hostPath,
    hostConst('/run/user/1000/run/kata-containers/shared/initdata/sb1/initdata.image'),
  );
});

test('invalid initdata from the annotation names the annotation key; no device is taken', (t) => {
  const devices = planner();
  const origin = { field: INITDATA_ANNOTATION, source: 'annotations' };
  const e = planInitdata({ initdata: 'version = "0.1.0"\n' }, 'none', devices, 'sb1', {
    origin,
  })._unsafeUnwrapErr();
  t.true(e.problems.every((p) => p.field === INITDATA_ANNOTATION));
  t.deepEqual(devices.devices(), []);
});

test('invalid initdata from config names hypervisor.qemu.initdata', (t) => {
  const e = planInitdata(
    { initdata: 'algorithm = "sha1"\n' },
    'none',
    planner(),
    'sb1',
  )._unsafeUnwrapErr();
  t.true(e.problems.every((p) => p.field === 'hypervisor.qemu.initdata'));
});

test('a sandbox id that is not a plain name is refused', (t) => {
  t.true(planInitdata({ initdata: SHA384_EMPTY }, 'none', planner(), '../x').isErr());
});
