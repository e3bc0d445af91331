import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import type { PlanError } from '../../ts/errors.js';
import { parseOciSpec, readOciBundle } from '../../ts/spec/oci-spec.js';

const SOURCE = '/bundle/config.json';
const minimal = { ociVersion: '1.1.0', root: { path: 'rootfs' } };

/** A valid spec with `patch` merged over the minimal one, as JSON text. */
const spec = (patch: Record<string, unknown>): string => JSON.stringify({ ...minimal, ...patch });

function parseErr(text: string): PlanError {
  const r = parseOciSpec(text, SOURCE);
  if (r.isOk()) throw new Error('expected an error');
  return r.error;
}

test('a minimal spec gets empty mounts, annotations and linux defaults', (t) => {
  const s = parseOciSpec(spec({}), SOURCE)._unsafeUnwrap();
  t.deepEqual(s.mounts, []);
  t.deepEqual(s.annotations, {});
  t.deepEqual(s.linux.devices, []);
  t.deepEqual(s.linux.resources, {});
});

test('unknown fields are kept for forwarding to the agent', (t) => {
  const s = parseOciSpec(
    spec({
      hooks: { prestart: [{ path: '/bin/true' }] },
      linux: { seccomp: { defaultAction: 'SCMP_ACT_ALLOW' } },
    }),
    SOURCE,
  )._unsafeUnwrap();
  t.deepEqual((s as Record<string, unknown>)['hooks'], { prestart: [{ path: '/bin/true' }] });
  t.deepEqual((s.linux as Record<string, unknown>)['seccomp'], { defaultAction: 'SCMP_ACT_ALLOW' });
});

test('the example bundle reads as a CRI pod sandbox with its limits', async (t) => {
  const r = await readOciBundle(new URL('../../examples/bundle', import.meta.url).pathname);
  const { spec: s, bundleDir } = r._unsafeUnwrap();
  t.true(path.isAbsolute(bundleDir));
  t.deepEqual(s.process?.args, ['sh', '-c', 'echo hello']);
  t.is(s.root.path, 'rootfs');
  t.is(s.linux.cgroupsPath, '/kata-ts-example/sandbox');
  t.deepEqual(s.linux.resources.cpu, { quota: 50000, period: 100000 });
  t.is(s.linux.resources.memory?.limit, 256 * 1024 * 1024);
  t.is(s.annotations['io.kubernetes.cri.container-type'], 'sandbox');
  t.is(s.annotations['io.kubernetes.cri.sandbox-id'], 'example-sandbox');
  t.deepEqual(
    s.mounts.map((m) => m.destination),
    ['/proc', '/dev', '/dev/shm', '/sys'],
  );
});

test('invalid JSON is reported with its line and column', (t) => {
  const e = parseErr('{\n  "ociVersion": "1.1.0",,\n}');
  t.is(e.problems.length, 1);
  t.is(e.problems[0]?.field, '2:25'); // the second comma
  t.true(e.problems[0]!.message.includes('invalid JSON'));
});

test('missing ociVersion and root are both reported', (t) => {
  const e = parseErr('{}');
  t.deepEqual(
    e.problems.map((p) => p.field),
    ['ociVersion', 'root'],
  );
  t.true(e.problems.every((p) => p.message.endsWith('is required')));
});

test('a JSON value that is not an object is refused', (t) => {
  t.is(parseErr('[1]').problems[0]?.message, '(root): expected a JSON object');
});

const badRows: { title: string; patch: Record<string, unknown>; field: string; says: string }[] = [
  {
    title: 'relative mount destination',
    patch: { mounts: [{ destination: '/a' }, { destination: '/b' }, { destination: 'c' }] },
    field: 'mounts[2].destination',
    says: 'must be an absolute path',
  },
  {
    title: 'fractional CPU quota',
    patch: { linux: { resources: { cpu: { quota: 1.5 } } } },
    field: 'linux.resources.cpu.quota',
    says: 'expected an integer',
  },
  {
    title: 'negative CPU period',
    patch: { linux: { resources: { cpu: { period: -1 } } } },
    field: 'linux.resources.cpu.period',
    says: 'must not be negative',
  },
  {
    title: 'numeric cpuset',
    patch: { linux: { resources: { cpu: { cpus: 3 } } } },
    field: 'linux.resources.cpu.cpus',
    says: 'expected a string',
  },
  {
    title: 'memory limit beyond 2^53',
    patch: { linux: { resources: { memory: { limit: 2 ** 60 } } } },
    field: 'linux.resources.memory.limit',
    says: '2^53',
  },
  {
    title: 'relative cwd',
    patch: { process: { user: { uid: 0, gid: 0 }, args: ['sh'], cwd: 'tmp' } },
    field: 'process.cwd',
    says: 'must be an absolute path',
  },
  {
    title: 'negative uid',
    patch: { process: { user: { uid: -1, gid: 0 }, args: ['sh'], cwd: '/' } },
    field: 'process.user.uid',
    says: 'must not be negative',
  },
  {
    title: 'empty root path',
    patch: { root: { path: '' } },
    field: 'root.path',
    says: 'must not be empty',
  },
  {
    title: 'bad device type',
    patch: { linux: { devices: [{ path: '/dev/x', type: 'z', major: 1, minor: 2 }] } },
    field: 'linux.devices[0].type',
    says: 'expected one of c, b, u, p',
  },
  {
    title: 'non-string annotation',
    patch: { annotations: { a: 1 } },
    field: 'annotations.a',
    says: 'expected a string',
  },
];
for (const row of badRows) {
  test(`refused: ${row.title} (names ${row.field})`, (t) => {
    const e = parseErr(spec(row.patch));
    t.is(e.problems.length, 1, JSON.stringify(e.problems));
    t.is(e.problems[0]?.field, row.field);
    t.true(e.problems[0]!.message.includes(row.says), e.problems[0]!.message);
    t.is(e.problems[0]?.kind, 'spec');
    t.is(e.problems[0]?.source, SOURCE);
  });
}

test('a quota of -1 (unlimited) is accepted', (t) => {
  const s = parseOciSpec(
    spec({ linux: { resources: { cpu: { quota: -1, period: 100000 } } } }),
    SOURCE,
  )._unsafeUnwrap();
  t.is(s.linux.resources.cpu?.quota, -1);
});

test('every problem in a spec is reported', (t) => {
  const e = parseErr(
    JSON.stringify({
      root: { path: 'r' },
      mounts: [{ destination: 'x' }],
      linux: { resources: { cpu: { quota: 0.5, period: -5 } } },
    }),
  );
  t.deepEqual(e.problems.map((p) => p.field).sort(), [
    'linux.resources.cpu.period',
    'linux.resources.cpu.quota',
    'mounts[0].destination',
    'ociVersion',
  ]);
});

test('a bundle without config.json is an error naming the file', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kata-ts-bundle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const e = (await readOciBundle(dir))._unsafeUnwrapErr();
  t.is(e.problems[0]?.source, path.join(dir, 'config.json'));
  t.true(e.problems[0]!.message.includes(`no config.json in bundle ${dir}`));
});

test('a bundle config.json with errors names that file as the source', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kata-ts-bundle-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(path.join(dir, 'config.json'), '{"root": {"path": "rootfs"}}');
  const e = (await readOciBundle(dir))._unsafeUnwrapErr();
  t.is(e.problems[0]?.source, path.join(dir, 'config.json'));
  t.is(e.problems[0]?.field, 'ociVersion');
});
