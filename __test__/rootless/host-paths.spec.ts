// vectors.md §9 rows for host-path prefixing and executable lookup (no root needed).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { gated, needs } from '../harness/prereq.js';
import { guestConst, hostConst } from '../../ts/paths.js';
import {
  firstValidExecutablePath,
  NOT_ROOTLESS,
  prefixWithRootlessDir,
  rootlessContext,
  vmmUserRuntimeDir,
} from '../../ts/rootless/index.js';

/** Widens a branded path for comparison with a literal. */
const str = (p: string): string => p;

const rootless1000 = rootlessContext(
  true,
  { XDG_RUNTIME_DIR: '/run/user/1000' },
  0,
)._unsafeUnwrap();

test('vmm_user_runtime_dir(1000) is /run/user/1000', (t) => {
  t.is(str(vmmUserRuntimeDir(1000)._unsafeUnwrap()), '/run/user/1000');
});

test('rootless on then off', (t) => {
  t.true(rootlessContext(true, {}, 1000)._unsafeUnwrap().rootless);
  t.false(rootlessContext(false, {}, 1000)._unsafeUnwrap().rootless);
});

test('the rootless dir is XDG_RUNTIME_DIR when set, else /run/user/<uid>', (t) => {
  const withXdg = rootlessContext(true, { XDG_RUNTIME_DIR: '/tmp/T' }, 1000)._unsafeUnwrap();
  t.deepEqual(withXdg, { rootless: true, dir: '/tmp/T' });
  t.deepEqual(rootlessContext(true, {}, 1234)._unsafeUnwrap(), {
    rootless: true,
    dir: '/run/user/1234',
  });
});

const rows: Array<[string, string, boolean, string]> = [
  ['absolute host path, rootless', '/run/kata', true, '/run/user/1000/run/kata'],
  ['absolute host path, not rootless', '/run/kata', false, '/run/kata'],
  ['relative path, rootless', 'a/b', true, '/run/user/1000/a/b'],
];
for (const [title, input, rootless, expected] of rows) {
  test(`prefix_with_rootless_dir: ${title}`, (t) => {
    t.is(
      str(prefixWithRootlessDir(input, rootless ? rootless1000 : NOT_ROOTLESS)._unsafeUnwrap()),
      expected,
    );
  });
}

test('a branded host path is prefixed too', (t) => {
  t.is(
    str(
      prefixWithRootlessDir(
        hostConst('/run/kata-containers/shared/sandboxes'),
        rootless1000,
      )._unsafeUnwrap(),
    ),
    '/run/user/1000/run/kata-containers/shared/sandboxes',
  );
});

test('.. cannot escape the rootless dir', (t) => {
  t.is(
    prefixWithRootlessDir('a/../../../etc', rootless1000)._unsafeUnwrapErr().kind,
    'invalid-path',
  );
});

test('guest paths are never prefixed (refused at compile time)', (t) => {
  const guest = guestConst('/run/kata-containers/shared/containers');
  // @ts-expect-error a GuestPath is not a host path
  prefixWithRootlessDir(guest, rootless1000);
  t.is(str(guest), '/run/kata-containers/shared/containers');
});

test('first_valid_executable_path: none exist', (t) => {
  t.is(
    firstValidExecutablePath(['a/b/c', 'c/d'])._unsafeUnwrapErr().message,
    'No valid executable found in paths: ["a/b/c", "c/d"]',
  );
});

test('first_valid_executable_path: 0644 file and directory skipped, 0755 file chosen', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-exe-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plain = path.join(dir, 'plain');
  const sub = path.join(dir, 'sub');
  const exe = path.join(dir, 'exe');
  writeFileSync(plain, '');
  chmodSync(plain, 0o644);
  mkdirSync(sub);
  writeFileSync(exe, '');
  chmodSync(exe, 0o755);
  t.is(firstValidExecutablePath([plain, sub, exe])._unsafeUnwrap(), exe);
  t.is(firstValidExecutablePath([plain, sub])._unsafeUnwrapErr().kind, 'rootless-no-executable');
});

test('create_dir_all_with_inherit_owner: relative path refused', async (t) => {
  const { createDirAllWithInheritOwner } = await import('../../ts/rootless/index.js');
  t.is(
    createDirAllWithInheritOwner('rel/dir', 0o700)._unsafeUnwrapErr().message,
    'the path must be absolute',
  );
});

gated(needs.root())(
  'create_dir_all_with_inherit_owner: new dirs take the owner of the existing parent',
  async (t) => {
    const { chownSync, statSync } = await import('node:fs');
    const { createDirAllWithInheritOwner } = await import('../../ts/rootless/index.js');
    const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-own-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const rootOwned = path.join(dir, 'root-owned', 'x');
    createDirAllWithInheritOwner(rootOwned, 0o700)._unsafeUnwrap();
    t.is(statSync(rootOwned).uid, 0);
    chownSync(dir, 1234, 5678);
    const target = path.join(dir, 'foo', 'bar');
    createDirAllWithInheritOwner(target, 0o700)._unsafeUnwrap();
    for (const d of [path.join(dir, 'foo'), target]) {
      const st = statSync(d);
      t.deepEqual([st.uid, st.gid, st.mode & 0o777], [1234, 5678, 0o700]);
    }
  },
);
