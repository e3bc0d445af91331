// fast-check arbitraries for hostile scalar inputs: numbers at and past every width the planner
// meets (u32, 2^53, i64), path segments with `..`, NUL, unicode and separators, ids.
import fc from 'fast-check';
import { MAX_ANNOTATION_VALUE_BYTES, MAX_VIRTUAL_VOLUME_BYTES } from '../../ts/input/limits.js';

/** Integers around every boundary, plus non-integers and huge magnitudes. */
export const hostileNumber: fc.Arbitrary<number> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: -3, max: 8 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 4_000_000 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      -1,
      0,
      1,
      100_000,
      1_000_000,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32 - 1,
      2 ** 32,
      2 ** 53 - 1,
      2 ** 53,
      2 ** 53 + 2,
      -(2 ** 53),
      2 ** 63,
      -(2 ** 63),
      1e300,
      -1e300,
      0.5,
      1.5,
      1e-9,
      -0.25,
    ),
  },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
);

/** One path segment: plain names, dot tricks, separators inside, NUL, unicode, very long. */
export const hostileSegment: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'a',
      'data',
      'etc',
      'hosts',
      'resolv.conf',
      'kubernetes.io~configmap',
      'kubernetes.io~secret',
      'pods',
      'volumes',
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '..',
      '.',
      '',
      '...',
      '..data',
      'a\0b',
      '\0',
      'ä',
      '😀',
      'a b',
      'line\nbreak',
      'back\\slash',
      ' ',
      '%2e%2e',
      'x'.repeat(300),
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
);

/** Paths built from hostile segments; absolute most of the time, with doubled slashes sometimes. */
export const hostilePath: fc.Arbitrary<string> = fc
  .tuple(
    fc.array(hostileSegment, { maxLength: 6 }),
    fc.constantFrom('/', '/', '/', '', '//'),
    fc.constantFrom('', '', '/'),
  )
  .map(([segs, lead, trail]) => `${lead}${segs.join('/')}${trail}`);

/** An absolute path (what the OCI schema accepts for destinations). */
export const hostileAbsolutePath: fc.Arbitrary<string> = hostilePath.map((p) =>
  p.startsWith('/') ? p : `/${p}`,
);

/** Container ids: mostly valid, sometimes hostile (separators, dots, NUL, too long). */
export const containerId: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9]{1,12}$/) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '..',
      '.',
      '',
      'a/b',
      'a\0b',
      '-a',
      'a-',
      'ä',
      'x'.repeat(129),
      'sb',
      'c-1.2_3',
    ),
  },
);

/** cpuset / mems texts: valid lists and ranges, and the vectors §5.3 error shapes. */
export const cpusetText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '',
      '0',
      '1',
      '0-3',
      '2-7',
      '0,4',
      '1,3-4,6-8',
      '0-1,1-2',
      ' 1 , 2 ',
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .array(fc.tuple(fc.nat(70_000), fc.option(fc.nat(70_000))), { maxLength: 4 })
      .map((xs) => xs.map(([a, b]) => (b === null ? `${a}` : `${a}-${b}`)).join(',')),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '1-2-3,3',
      '1-2,,3',
      '1-2.5,3',
      '1-1',
      '2-1',
      '-1',
      '1-',
      '999999999999999999999999999999',
      '0-4294967295',
      '0-65535',
      'a',
    ),
  },
);

/**
 * Characters that end a line or drive a terminal, and text that imitates an error line: what a
 * hostile value uses to forge output (issue 17 #7).
 */
export const controlText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '\n',
      '\r\n',
      '\u001b[2J',
      '\u001b]0;title\u0007',
      '\u009b31m',
      '\u0085',
      '\u2028',
      '\u2029',
      '\u202e',
      '\u0000',
      '\u007f',
      '\nkata-ts: fake: injected',
      'x\r kata-ts: /etc/shadow: root',
      '\u001b[31mred\u001b[0m',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0, max: 0x9f }).map((c) => String.fromCharCode(c)),
      maxLength: 12,
    }),
  },
);

/** A run of one marker character a test can look for in output: errors must never echo a long run of it. */
export const OVERSIZE_MARK = 'A';

/**
 * Lengths at, just under and just over each named cap, and four times over. (The 8 MiB values of
 * the report are in __test__/cli/hostile-inputs.spec.ts: here a generated sandbox may carry a
 * value in each of 120 containers.)
 */
const OVERSIZE_LENGTHS = [
  ...new Set([
    MAX_ANNOTATION_VALUE_BYTES - 4,
    MAX_ANNOTATION_VALUE_BYTES,
    MAX_ANNOTATION_VALUE_BYTES + 4,
    4 * MAX_ANNOTATION_VALUE_BYTES,
    MAX_VIRTUAL_VOLUME_BYTES - 4,
    MAX_VIRTUAL_VOLUME_BYTES,
    MAX_VIRTUAL_VOLUME_BYTES + 4,
    4 * MAX_VIRTUAL_VOLUME_BYTES,
  ]),
];
/** Built once: fast-check hands out the same strings, so a run costs no allocation. */
const OVERSIZE_VALUES = OVERSIZE_LENGTHS.map((n) => OVERSIZE_MARK.repeat(n));

/** Values near and over the caps; all-`A` text is valid base64 when its length is a multiple of 4. */
export const oversizeText: fc.Arbitrary<string> = fc.constantFrom(...OVERSIZE_VALUES);
