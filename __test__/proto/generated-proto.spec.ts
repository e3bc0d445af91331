// ts/gen is generated from proto/ by `make proto` and committed; this regenerates it into a temp
// dir with the same protoc and plugin and requires the committed files to match.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('../../', import.meta.url));

/** Files (not directories) below `dir`, as sorted relative paths (proto/containerd/** nests). */
const filesBelow = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();

test('ts/gen is what protoc-gen-es generates from proto/', (t) => {
  const out = mkdtempSync(path.join(tmpdir(), 'kata-ts-proto-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const protos = filesBelow(path.join(root, 'proto'))
    .filter((f) => f.endsWith('.proto'))
    .map((f) => `proto/${f}`);
  execFileSync(
    'protoc',
    [
      '-I',
      'proto',
      '-I',
      '/usr/include',
      `--plugin=protoc-gen-es=${path.join(root, 'node_modules/.bin/protoc-gen-es')}`,
      '--es_opt=target=ts,import_extension=js',
      `--es_out=${out}`,
      ...protos,
    ],
    { cwd: root },
  );
  const generated = filesBelow(out);
  t.deepEqual(filesBelow(path.join(root, 'ts/gen')), generated);
  for (const f of generated) {
    t.is(
      readFileSync(path.join(root, 'ts/gen', f), 'utf8'),
      readFileSync(path.join(out, f), 'utf8'),
      `ts/gen/${f} is stale: run make proto`,
    );
  }
});
