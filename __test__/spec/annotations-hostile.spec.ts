// Annotation inputs that used to break the planner. (1) The hypervisor `path` annotation against
// valid_hypervisor_paths globs — found by __test__/fuzz/plan-properties.spec.ts: a pattern with an
// unclosed `[` or a reversed range made the RegExp constructor throw, so plan() threw instead of
// returning an error. (2) A gzip bomb in cc_init_data was decompressed without a bound.
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { MAX_ANNOTATION_VALUE_BYTES, MAX_VIRTUAL_VOLUME_BYTES } from '../../ts/input/limits.js';
import { decodeVirtualVolume } from '../../ts/plan/virtual-volume.js';
import {
  applyConfigAnnotations,
  decodeInitdataAnnotation,
  globToRegExp,
  MAX_INITDATA_BYTES,
} from '../../ts/spec/annotations.js';
import { kataConfig, ociSpec, planOf } from '../plan/plan-builders.js';

const PATH = 'io.katacontainers.config.hypervisor.path';
const withPaths = (validHypervisorPaths: string[]) =>
  kataConfig({ enableAnnotations: ['.*'], validHypervisorPaths });

const rows: [string, string, boolean][] = [
  ['/usr/bin/qemu-*', '/usr/bin/qemu-system-x86_64', true],
  ['/usr/bin/qemu-*', '/usr/bin/qemu-x/../../sh', false],
  ['/usr/bin/qemu-[xy]*', '/usr/bin/qemu-x', true],
  ['/usr/bin/qemu-[!xy]*', '/usr/bin/qemu-x', false],
  ['/usr/bin/qemu-[!xy]*', '/usr/bin/qemu-a', true],
  ['/usr/bin/qemu-?', '/usr/bin/qemu-a', true],
  ['/usr/bin/qemu.bin', '/usr/bin/qemuxbin', false],
  ['/opt/(kata)+/qemu', '/opt/(kata)+/qemu', true],
];
for (const [pattern, value, allowed] of rows) {
  test(`glob ${pattern} ${allowed ? 'allows' : 'refuses'} ${value}`, (t) => {
    t.is(globToRegExp(pattern)._unsafeUnwrap().test(value), allowed);
  });
}

for (const [pattern, why] of [
  ['[', 'unclosed character class'],
  ['/usr/bin/[q', 'unclosed character class'],
  ['/usr/bin/[z-a]*', 'reversed range z-a'],
] as const) {
  test(`an invalid glob ${pattern} allows nothing and plan() says why instead of throwing`, (t) => {
    t.is(
      globToRegExp(pattern)._unsafeUnwrapErr(),
      `invalid glob pattern ${JSON.stringify(pattern)}: ${why}`,
    );
    const spec = ociSpec(
      (s) => (s.annotations = { ...s.annotations, [PATH]: '/usr/bin/qemu-system-x86_64' }),
    );
    const e = planOf({
      config: withPaths([pattern]),
      sandbox: { id: 'sb', spec },
    })._unsafeUnwrapErr();
    t.deepEqual(formatPlanError(e), [
      `kata-ts: /bundles/sb/config.json: ${PATH}: /usr/bin/qemu-system-x86_64 is not allowed by valid_hypervisor_paths [${pattern}]; invalid glob pattern ${JSON.stringify(pattern)}: ${why}`,
    ]);
  });
}

test('a valid pattern next to an invalid one still allows its paths', (t) => {
  const r = applyConfigAnnotations(
    withPaths(['[', '/usr/bin/*']),
    { [PATH]: '/usr/bin/qemu' },
    'spec',
  );
  t.is(r._unsafeUnwrap().config.hypervisor.path, '/usr/bin/qemu');
});

test('a cc_init_data gzip bomb is refused without decompressing it all', (t) => {
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x61)).toString('base64');
  t.true(bomb.length < 200_000);
  t.is(
    decodeInitdataAnnotation(bomb)._unsafeUnwrapErr(),
    `gz decoder failed: initdata larger than ${MAX_INITDATA_BYTES} bytes once decompressed`,
  );
  const spec = ociSpec(
    (s) =>
      (s.annotations = {
        ...s.annotations,
        'io.katacontainers.config.hypervisor.cc_init_data': bomb,
      }),
  );
  const e = planOf({
    config: kataConfig({ enableAnnotations: ['cc_init_data'] }),
    sandbox: { id: 'sb', spec },
  })._unsafeUnwrapErr();
  t.deepEqual(
    e.problems.map((p) => p.field),
    ['io.katacontainers.config.hypervisor.cc_init_data'],
  );
});

test('initdata just under the cap still decodes', (t) => {
  const text = `x = "${'a'.repeat(MAX_INITDATA_BYTES - 10)}"\n`;
  t.is(
    decodeInitdataAnnotation(gzipSync(text).toString('base64'))._unsafeUnwrap().length,
    text.length,
  );
});

// Issue 17 #5: an 8 MiB cc_init_data overflowed V8's stack in the base64 regex (`Maximum call stack
// size exceeded`, exit 1) and a 3 MiB one was echoed whole. Values are capped before they are
// parsed, base64 is checked without a regex, and errors show a short prefix.
const CC = 'io.katacontainers.config.hypervisor.cc_init_data';
const ccConfig = kataConfig({ enableAnnotations: ['cc_init_data'] });

test('an 8 MiB cc_init_data is refused by MAX_ANNOTATION_VALUE_BYTES, without throwing and without echoing it', (t) => {
  for (const value of ['A'.repeat(8 * 1024 * 1024), `${'A'.repeat(3 * 1024 * 1024)}*`]) {
    const e = applyConfigAnnotations(ccConfig, { [CC]: value }, 'spec')._unsafeUnwrapErr();
    const lines = formatPlanError(e);
    t.is(lines.length, 1);
    t.true(
      lines[0]!.endsWith(
        `value of ${value.length} bytes is larger than ${MAX_ANNOTATION_VALUE_BYTES} bytes (MAX_ANNOTATION_VALUE_BYTES)`,
      ),
      lines[0],
    );
    t.true(e.problems[0]!.value.length < 100);
  }
});

test('cc_init_data just under MAX_ANNOTATION_VALUE_BYTES is decoded; one byte over is refused', (t) => {
  // Incompressible TOML so the base64 lands near the cap.
  const random = Buffer.from(
    Array.from({ length: 150_000 }, (_, i) => (i * 7919 + (i >> 3) * 31) % 251),
  )
    .toString('hex')
    .slice(0, 180_000);
  const toml = `algorithm = "sha384"\nversion = "0.1.0"\n[data]\nk = "${random}"\n`;
  let value = gzipSync(toml, { level: 0 }).toString('base64');
  t.true(
    value.length > MAX_ANNOTATION_VALUE_BYTES * 0.9 && value.length <= MAX_ANNOTATION_VALUE_BYTES,
    `${value.length}`,
  );
  t.is(
    applyConfigAnnotations(ccConfig, { [CC]: value }, 'spec')._unsafeUnwrap().config.hypervisor
      .initdata,
    toml,
  );
  value = value.padEnd(MAX_ANNOTATION_VALUE_BYTES + 1, 'A');
  t.regex(
    formatPlanError(
      applyConfigAnnotations(ccConfig, { [CC]: value }, 'spec')._unsafeUnwrapErr(),
    )[0]!,
    /MAX_ANNOTATION_VALUE_BYTES/,
  );
});

test('invalid base64 under the cap is refused with a short message, never echoing the value', (t) => {
  const value = `${'QUJD'.repeat(60_000)}*===`;
  const lines = formatPlanError(
    applyConfigAnnotations(ccConfig, { [CC]: value }, 'spec')._unsafeUnwrapErr(),
  );
  t.deepEqual(lines, [`kata-ts: spec: ${CC}: base64 decode: not padded standard base64`]);
});

test('a virtual volume payload over MAX_VIRTUAL_VOLUME_BYTES is refused with a short prefix; one under it decodes', (t) => {
  const big = Buffer.from(
    JSON.stringify({ volume_type: 'image_guest_pull', source: 'x'.repeat(4_800_000) }),
  ).toString('base64');
  const e = decodeVirtualVolume(big)._unsafeUnwrapErr();
  t.true(e.length < 250, e);
  t.true(
    e.endsWith(`(larger than ${MAX_VIRTUAL_VOLUME_BYTES} bytes (MAX_VIRTUAL_VOLUME_BYTES))`),
    e,
  );
  const near = {
    volume_type: 'image_guest_pull',
    source: 'y'.repeat(Math.floor((MAX_VIRTUAL_VOLUME_BYTES * 3) / 4) - 100),
  };
  const b64 = Buffer.from(JSON.stringify(near)).toString('base64');
  t.true(b64.length <= MAX_VIRTUAL_VOLUME_BYTES);
  t.deepEqual(decodeVirtualVolume(b64)._unsafeUnwrap(), near);
  const bad = decodeVirtualVolume(`${'e30='.repeat(50_000)}!`)._unsafeUnwrapErr();
  t.true(bad.length < 250, bad);
});
