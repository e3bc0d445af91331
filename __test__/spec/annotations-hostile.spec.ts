// Annotation inputs that used to break the planner. (1) The hypervisor `path` annotation against
// valid_hypervisor_paths globs — found by __test__/fuzz/plan-properties.spec.ts: a pattern with an
// unclosed `[` or a reversed range made the RegExp constructor throw, so plan() threw instead of
// returning an error. (2) A gzip bomb in cc_init_data was decompressed without a bound.
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { applyConfigAnnotations, decodeInitdataAnnotation, globToRegExp, MAX_INITDATA_BYTES } from '../../ts/spec/annotations.js';
import { kataConfig, ociSpec, planOf } from '../plan/plan-builders.js';

const PATH = 'io.katacontainers.config.hypervisor.path';
const withPaths = (validHypervisorPaths: string[]) => kataConfig({ enableAnnotations: ['.*'], validHypervisorPaths });

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

for (const [pattern, why] of [['[', 'unclosed character class'], ['/usr/bin/[q', 'unclosed character class'], ['/usr/bin/[z-a]*', 'reversed range z-a']] as const) {
  test(`an invalid glob ${pattern} allows nothing and plan() says why instead of throwing`, (t) => {
    t.is(globToRegExp(pattern)._unsafeUnwrapErr(), `invalid glob pattern ${JSON.stringify(pattern)}: ${why}`);
    const spec = ociSpec((s) => (s.annotations = { ...s.annotations, [PATH]: '/usr/bin/qemu-system-x86_64' }));
    const e = planOf({ config: withPaths([pattern]), sandbox: { id: 'sb', spec } })._unsafeUnwrapErr();
    t.deepEqual(formatPlanError(e), [
      `kata-ts: /bundles/sb/config.json: ${PATH}: /usr/bin/qemu-system-x86_64 is not allowed by valid_hypervisor_paths [${pattern}]; invalid glob pattern ${JSON.stringify(pattern)}: ${why}`,
    ]);
  });
}

test('a valid pattern next to an invalid one still allows its paths', (t) => {
  const r = applyConfigAnnotations(withPaths(['[', '/usr/bin/*']), { [PATH]: '/usr/bin/qemu' }, 'spec');
  t.is(r._unsafeUnwrap().config.hypervisor.path, '/usr/bin/qemu');
});

test('a cc_init_data gzip bomb is refused without decompressing it all', (t) => {
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x61)).toString('base64');
  t.true(bomb.length < 200_000);
  t.is(decodeInitdataAnnotation(bomb)._unsafeUnwrapErr(), `gz decoder failed: initdata larger than ${MAX_INITDATA_BYTES} bytes once decompressed`);
  const spec = ociSpec((s) => (s.annotations = { ...s.annotations, 'io.katacontainers.config.hypervisor.cc_init_data': bomb }));
  const e = planOf({ config: kataConfig({ enableAnnotations: ['cc_init_data'] }), sandbox: { id: 'sb', spec } })._unsafeUnwrapErr();
  t.deepEqual(e.problems.map((p) => p.field), ['io.katacontainers.config.hypervisor.cc_init_data']);
});

test('initdata just under the cap still decodes', (t) => {
  const text = `x = "${'a'.repeat(MAX_INITDATA_BYTES - 10)}"\n`;
  t.is(decodeInitdataAnnotation(gzipSync(text).toString('base64'))._unsafeUnwrap().length, text.length);
});
