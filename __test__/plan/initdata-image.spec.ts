// vectors.md §7.1: the initdata disk image layout and the agent's way of reading it.
import test from 'ava';
import { gunzipSync } from 'node:zlib';
import {
  buildInitdataImage,
  gzipInitdata,
  initdataImage,
  readInitdataImage,
} from '../../ts/plan/initdata.js';

const MAGIC = [0x69, 0x6e, 0x69, 0x74, 0x64, 0x61, 0x74, 0x61]; // "initdata"

/** u64 little-endian bytes of n. */
const u64le = (n: number): number[] =>
  Array.from({ length: 8 }, (_, i) => Math.floor(n / 256 ** i) % 256);

// (derived) layout: pad = (512 − (16+len) % 512) % 512
const layoutRows: [number, number, number][] = [
  [0, 496, 512],
  [1, 495, 512],
  [100, 396, 512],
  [496, 0, 512],
  [497, 511, 1024],
  [1000, 8, 1024],
];
for (const [len, pad, size] of layoutRows) {
  test(`a ${len}-byte payload makes a ${size}-byte image with ${pad} bytes of zero padding`, (t) => {
    const payload = Uint8Array.from({ length: len }, (_, i) => (i % 251) + 1); // never 0
    const image = initdataImage(payload);
    t.is(image.length, size);
    t.deepEqual([...image.subarray(0, 16)], [...MAGIC, ...u64le(len)]);
    t.deepEqual(image.subarray(16, 16 + len), payload);
    t.is(size - 16 - len, pad);
    t.true(image.subarray(16 + len).every((b) => b === 0));
  });
}

test('the length field is u64 little endian (a 0x0201-byte payload)', (t) => {
  const image = initdataImage(new Uint8Array(0x0201));
  t.deepEqual([...image.subarray(8, 16)], [0x01, 0x02, 0, 0, 0, 0, 0, 0]);
});

test('a small initdata TOML makes a 512-multiple image starting with the magic', (t) => {
  const image = buildInitdataImage('[config]\nkey = "value"\n', 6);
  t.truthy(image);
  t.is((image?.length ?? 1) % 512, 0);
  t.deepEqual([...(image?.subarray(0, 8) ?? [])], MAGIC);
});

test('empty initdata makes no image', (t) => {
  t.is(buildInitdataImage(''), null);
});

for (const level of [0, 3, 9]) {
  test(`a thousand [config] lines at gzip level ${level} make a non-empty image that reads back`, (t) => {
    const toml = '[config]\n'.repeat(1000);
    const image = buildInitdataImage(toml, level);
    t.true((image?.length ?? 0) > 0);
    t.is(readInitdataImage(image ?? new Uint8Array())._unsafeUnwrap(), toml);
  });
}

test('read like the agent: skip 8, u64 LE length, gunzip → the original TOML', (t) => {
  const toml =
    'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = """\nurl = "http://kbs"\n"""\n';
  const image = buildInitdataImage(toml);
  if (image === null) return t.fail();
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const len = Number(view.getBigUint64(8, true));
  t.is(gunzipSync(image.subarray(16, 16 + len)).toString('utf8'), toml);
});

test('gzip output is deterministic (no timestamp), so the image is too', (t) => {
  t.deepEqual(gzipInitdata('[data]\n'), gzipInitdata('[data]\n'));
  t.deepEqual([...gzipInitdata('[data]\n').subarray(4, 8)], [0, 0, 0, 0]);
});

test('images without the magic or with a bad length are refused by the reader', (t) => {
  t.true(readInitdataImage(new Uint8Array(512)).isErr());
  const image = initdataImage(new Uint8Array(10));
  image[8] = 0xff;
  image[9] = 0xff;
  t.true(readInitdataImage(image).isErr());
  t.true(readInitdataImage(initdataImage(new Uint8Array([1, 2, 3]))).isErr());
});
