// CopyFile lands in the agent's root exactly as the Kata agent would write it: types from the
// file_mode bits, permissions, owner, parents with dir_mode, chunks reassembled by offset, and
// nothing accepted outside /run/kata-containers/shared/containers/.
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { snapshot } from '../sync/sync-harness.js';
import { connect, startAgent, type RunningAgent } from './agent-harness.js';

const GUEST = '/run/kata-containers/shared/containers/';
const onHost = (a: RunningAgent, guest: string) => join(a.root, guest);
const perms = (mode: number) => mode & 0o7777;

test('a regular file gets its content, file_mode & 0o7777, owner, and a parent with dir_mode & 0o777', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const path = `${GUEST}c1-0011-cm/key`;
  const data = Buffer.from('secret value\n');
  const r = await c.copyFile({
    path,
    fileSize: BigInt(data.length),
    fileMode: 0o100640,
    dirMode: 0o40750,
    uid: 1234,
    gid: 5678,
    data,
  });
  r._unsafeUnwrap();
  const file = statSync(onHost(agent, path));
  t.true(file.isFile());
  t.is(perms(file.mode), 0o640);
  t.deepEqual([file.uid, file.gid], [1234, 5678]);
  t.deepEqual(readFileSync(onHost(agent, path)), data);
  const parent = statSync(onHost(agent, `${GUEST}c1-0011-cm`));
  t.is(perms(parent.mode), 0o750);
  t.deepEqual([parent.uid, parent.gid], [1234, 5678]);
  t.deepEqual(readdirSync(onHost(agent, `${GUEST}c1-0011-cm`)), ['key'], 'no temp file left');
});

test('S_IFDIR in file_mode creates a directory with its mode and owner, twice without error', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const path = `${GUEST}c1-vol/sub`;
  for (let i = 0; i < 2; i++) {
    (
      await c.copyFile({ path, fileMode: 0o40705, dirMode: 0o40750, uid: 42, gid: 43 })
    )._unsafeUnwrap();
  }
  const dir = statSync(onHost(agent, path));
  t.true(dir.isDirectory());
  t.is(perms(dir.mode), 0o705);
  t.deepEqual([dir.uid, dir.gid], [42, 43]);
});

test('S_IFLNK in file_mode creates a symlink to data with the owner, and a resend replaces it', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const path = `${GUEST}c1-secret/..data`;
  const link = (target: string) =>
    c.copyFile({
      path,
      fileSize: BigInt(target.length),
      fileMode: 0o120777,
      uid: 7,
      gid: 8,
      data: Buffer.from(target),
    });
  (await link('..2026_01_01_00_00_00.1'))._unsafeUnwrap();
  (await link('..2026_02_02_00_00_00.2'))._unsafeUnwrap();
  const st = lstatSync(onHost(agent, path));
  t.true(st.isSymbolicLink());
  t.deepEqual([st.uid, st.gid], [7, 8]);
  t.is(readlinkSync(onHost(agent, path)), '..2026_02_02_00_00_00.2');
});

test('chunked CopyFile with offsets reassembles the file and renames it only when complete', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const path = `${GUEST}c1-data/blob.bin`;
  const data = randomBytes((3 << 20) + 12345);
  const chunk = 1 << 20;
  const base = { path, fileSize: BigInt(data.length), fileMode: 0o100600, dirMode: 0o40750 };
  (await c.copyFile({ ...base, offset: 0n, data: data.subarray(0, chunk) }))._unsafeUnwrap();
  t.false(existsSync(onHost(agent, path)), 'not visible before the last chunk');
  const temps = readdirSync(onHost(agent, `${GUEST}c1-data`));
  t.is(temps.length, 1);
  t.regex(
    temps[0]!,
    /^\.blob\.bin\.[0-9a-f]{16}\.tmp$/,
    'written to an unguessable .<name>.<random>.tmp',
  );
  for (let at = 0; at < data.length; at += chunk) {
    (
      await c.copyFile({ ...base, offset: BigInt(at), data: data.subarray(at, at + chunk) })
    )._unsafeUnwrap();
  }
  t.true(readFileSync(onHost(agent, path)).equals(data));
  t.deepEqual(readdirSync(onHost(agent, `${GUEST}c1-data`)), ['blob.bin'], 'no temp file left');
  const offsets = agent
    .records()
    .filter((r) => r.method === 'CopyFile')
    .map((r) => /offset: (\d+)/.exec(r.request)?.[1] ?? '0');
  t.deepEqual(offsets, ['0', '0', String(chunk), String(2 * chunk), String(3 * chunk)]);
});

test('CopyFile outside the shared containers dir is refused by the agent', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const e = (
    await c.copyFile({
      path: '/etc/kata-ts-should-not-exist',
      fileSize: 1n,
      fileMode: 0o100644,
      data: Buffer.from('x'),
    })
  )._unsafeUnwrapErr();
  t.like(e, { kind: 'status', method: 'CopyFile', code: 3, codeName: 'INVALID_ARGUMENT' });
  t.regex(e.message, /does not start with \/run\/kata-containers\/shared\/containers\//);
  t.false(existsSync('/etc/kata-ts-should-not-exist'));
  t.false(existsSync(join(agent.root, 'etc')));
});

test('CopyFile with .. or through a copied symlink is refused', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const dotdot = await c.copyFile({
    path: `${GUEST}../../../../etc/x`,
    fileSize: 1n,
    fileMode: 0o100644,
    data: Buffer.from('x'),
  });
  t.like(dotdot._unsafeUnwrapErr(), { kind: 'status', codeName: 'INVALID_ARGUMENT' });
  (
    await c.copyFile({
      path: `${GUEST}c1/escape`,
      fileSize: 4n,
      fileMode: 0o120777,
      data: Buffer.from('/tmp'),
    })
  )._unsafeUnwrap();
  const through = await c.copyFile({
    path: `${GUEST}c1/escape/kata-ts-x`,
    fileSize: 1n,
    fileMode: 0o100644,
    data: Buffer.from('x'),
  });
  t.like(through._unsafeUnwrapErr(), { kind: 'status', codeName: 'INVALID_ARGUMENT' });
  t.false(existsSync('/tmp/kata-ts-x'));
});

test('the CopyFile fast encoder emits exactly the schema encoding', async (t) => {
  const { create, toBinary } = await import('@bufbuild/protobuf');
  const { CopyFileRequestSchema } = await import('../../ts/gen/agent_pb.js');
  const { encodeCopyFileRequest } = await import('../../ts/agent/client.js');
  const rows = [
    { path: `${GUEST}a`, fileSize: 2n, fileMode: 0o100644, data: Buffer.from('hi') },
    { path: `${GUEST}d`, fileMode: 0o40755, dirMode: 0o40750, uid: 1000, gid: -1 },
    {
      path: `${GUEST}big`,
      fileSize: 5n << 20n,
      fileMode: 0o100600,
      offset: 1n << 20n,
      data: randomBytes((1 << 20) + 3),
    },
    { path: `${GUEST}e`, data: randomBytes(127) },
    { path: `${GUEST}f`, data: randomBytes(128) },
  ];
  for (const row of rows) {
    t.deepEqual(
      Buffer.from(encodeCopyFileRequest(row)),
      Buffer.from(toBinary(CopyFileRequestSchema, create(CopyFileRequestSchema, row))),
    );
  }
});

// The guest share is hostile: a container can plant any name in its rw volume, and the agent
// runs as root. `outside` sits next to the agent's root; nothing in it may change.
function outsideDir(agent: RunningAgent): string {
  const outside = join(agent.dir, 'outside');
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'victim'), 'original');
  chmodSync(join(outside, 'victim'), 0o600);
  chmodSync(join(outside, 'sub'), 0o700);
  return outside;
}

test('a directory copied over a symlink replaces the link and never chmods its target', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const outside = outsideDir(agent);
  const before = snapshot(outside);
  for (const [name, target] of [
    ['d', join(outside, 'sub')],
    ['fin2', join(outside, 'victim')],
  ] as const) {
    const path = `${GUEST}c1/${name}`;
    (
      await c.copyFile({
        path,
        fileSize: BigInt(target.length),
        fileMode: 0o120777,
        data: Buffer.from(target),
      })
    )._unsafeUnwrap();
    (await c.copyFile({ path, fileMode: 0o40777 }))._unsafeUnwrap();
    const st = lstatSync(onHost(agent, path));
    t.true(st.isDirectory(), `${name} is a real directory now`);
    t.is(perms(st.mode), 0o777);
  }
  t.deepEqual(snapshot(outside), before);
});

test('symlinks planted at the old predictable temp names are never written through', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const outside = outsideDir(agent);
  (
    await c.copyFile({
      path: `${GUEST}c1/keep`,
      fileSize: 1n,
      fileMode: 0o100644,
      data: Buffer.from('x'),
    })
  )._unsafeUnwrap();
  const before = snapshot(outside);
  symlinkSync(join(outside, 'victim'), onHost(agent, `${GUEST}c1/t.tmp`));
  symlinkSync(join(outside, 'new'), onHost(agent, `${GUEST}c1/v.tmp`));
  const cont = await c.copyFile({
    path: `${GUEST}c1/t`,
    fileSize: 12n,
    offset: 8n,
    fileMode: 0o104777,
    data: Buffer.from('XXXX'),
  });
  t.like(cont._unsafeUnwrapErr(), { kind: 'status', codeName: 'FAILED_PRECONDITION' });
  (
    await c.copyFile({
      path: `${GUEST}c1/v`,
      fileSize: 4n,
      fileMode: 0o104777,
      data: Buffer.from('abcd'),
    })
  )._unsafeUnwrap();
  t.deepEqual(snapshot(outside), before);
  t.is(readFileSync(onHost(agent, `${GUEST}c1/v`), 'utf8'), 'abcd');
});

test('chunked CopyFiles of names sharing a stem, 32 in flight, each land with their own content', async (t) => {
  const agent = startAgent(t);
  const c = await connect(t, agent);
  const ext = ['yaml', 'json', 'txt'];
  for (let run = 0; run < 10; run++) {
    const files = Array.from({ length: 48 }, (_, i) => ({
      path: `${GUEST}c1/c${i % 16}.${ext[Math.floor(i / 16)]}`,
      data: Buffer.from(`run ${run} file ${i} ${'z'.repeat(i * 41)}`),
    }));
    let inFlight = 0;
    let most = 0;
    const waiting: (() => void)[] = [];
    const send = async (f: (typeof files)[number]) => {
      const half = f.data.length >> 1;
      for (const [offset, end] of [
        [0, half],
        [half, f.data.length],
      ] as const) {
        // At most 32 CopyFiles in flight, as the copy engine sends them.
        while (inFlight >= 32) await new Promise<void>((r) => waiting.push(r));
        inFlight++;
        most = Math.max(most, inFlight);
        const r = await c.copyFile({
          path: f.path,
          fileSize: BigInt(f.data.length),
          offset: BigInt(offset),
          fileMode: 0o100644,
          data: f.data.subarray(offset, end),
        });
        inFlight--;
        waiting.shift()?.();
        r._unsafeUnwrap();
      }
    };
    await Promise.all(files.map(send));
    t.true(most > 8, `copies overlapped (${most} in flight)`);
    for (const f of files)
      t.deepEqual(readFileSync(onHost(agent, f.path)), f.data, `${f.path} run ${run}`);
    t.deepEqual(
      readdirSync(onHost(agent, `${GUEST}c1`)).filter((n) => n.endsWith('.tmp')),
      [],
    );
  }
});
