// Real users and real processes (runs as root): every user this file creates is tracked by its
// exact name and removed in teardown, every process killed by its pid, even when a test fails.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { err } from 'neverthrow';
import { call } from '../../ts/native.js';
import {
  createRootlessUser,
  findSbinTool,
  launchAsRootlessUser,
  launchedExit,
  startRootless,
  teardownRootlessUser,
  userExists,
  vmmGroups,
  type RootlessUser,
} from '../../ts/rootless/index.js';
import { gated, needs } from '../harness/prereq.js';

const created = new Set<string>();
const pids = new Set<number>();

function killAll(): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.once('exit', killAll);

/** Creates a user and registers its removal in teardown. */
function makeUser(
  t: ExecutionContext,
  options: Parameters<typeof createRootlessUser>[0] = {},
): RootlessUser {
  const user = createRootlessUser(options)._unsafeUnwrap();
  created.add(user.name);
  t.teardown(() => {
    if (teardownRootlessUser(user).isOk()) created.delete(user.name);
  });
  return user;
}

function launch(
  t: ExecutionContext,
  user: RootlessUser,
  p: string,
  args: string[],
  stdout?: string,
): number {
  const pid = launchAsRootlessUser(user, {
    path: p,
    args,
    ...(stdout ? { stdout, stderr: stdout } : {}),
  })._unsafeUnwrap();
  pids.add(pid);
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  return pid;
}

function status(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? '')
    .slice(field.length + 1)
    .trim()
    .split(/\s+/)
    .join(' ');
}

async function waitExit(pid: number, timeoutMs = 10_000): Promise<ReturnType<typeof launchedExit>> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const e = launchedExit(pid);
    if (e && !e.running) return e;
    await new Promise((r) => setTimeout(r, 20));
  }
  return launchedExit(pid);
}

const rootOnly = gated(needs.root(), needs.useradd()).serial;

test.after.always(() => {
  killAll();
  for (const name of created) teardownRootlessUser({ name });
});

rootOnly(
  'creates a kata-<hex> user with a 0700 runtime dir it owns and the kvm gid of /dev/kvm',
  (t) => {
    const user = makeUser(t);
    t.regex(user.name, /^kata-[0-9a-f]{8}$/);
    t.true(userExists(user.name));
    t.is(`${user.runtimeDir}`, `/run/user/${user.uid}`);
    const st = statSync(user.runtimeDir);
    t.is(st.uid, user.uid);
    t.is(st.gid, user.gid);
    t.is(st.mode & 0o777, 0o700);
    t.is(user.kvmGid, statSync('/dev/kvm').gid);
    const shell = readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${user.name}:`));
    t.regex(shell ?? '', /:\/sbin\/nologin$/);
  },
);

rootOnly('the launched process has the user uid/gid and exactly the kvm group', (t) => {
  const user = makeUser(t);
  const pid = launch(t, user, '/bin/sleep', ['30']);
  t.is(status(pid, 'Uid'), `${user.uid} ${user.uid} ${user.uid} ${user.uid}`);
  t.is(status(pid, 'Gid'), `${user.gid} ${user.gid} ${user.gid} ${user.gid}`);
  t.is(status(pid, 'Groups'), `${user.kvmGid}`);
  t.deepEqual(vmmGroups(user), [user.kvmGid]);
  process.kill(pid, 'SIGKILL');
});

/** `sh` that reports whether it could open `device` read-write. */
function openProbe(device: string): string[] {
  return ['-c', `if (exec 3<>${device}) 2>/dev/null; then echo opened; else echo refused; fi`];
}

rootOnly('the launched process opens /dev/kvm through the kvm group', async (t) => {
  // This host's /dev/kvm is 0600 root:root, so its group (0) grants nothing. The same device
  // (char 10:232) is made again as a 0660 node owned by a test group, and the user's kvm group
  // taken from it, as it would be from a host /dev/kvm owned by group kvm.
  const scratch = mkdtempSync(path.join(tmpdir(), 'kata-ts-kvm-'));
  chmodSync(scratch, 0o755);
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const node = path.join(scratch, 'kvm');
  execFileSync('mknod', ['-m', '0660', node, 'c', '10', '232']);
  const kvmGroup = 64_999;
  chownSync(node, 0, kvmGroup);
  const user = makeUser(t, { kvmDevice: node });
  t.is(user.kvmGid, kvmGroup);
  const out = path.join(user.runtimeDir, 'kvm.out');
  const pid = launch(t, user, '/bin/sh', openProbe(node), out);
  t.is((await waitExit(pid))?.running, false);
  t.is(readFileSync(out, 'utf8').trim(), 'opened');
});

rootOnly('without the kvm group the same node is refused', async (t) => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'kata-ts-kvm-'));
  chmodSync(scratch, 0o755);
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const node = path.join(scratch, 'kvm');
  execFileSync('mknod', ['-m', '0660', node, 'c', '10', '232']);
  chownSync(node, 0, 64_999);
  const user = makeUser(t);
  const out = path.join(user.runtimeDir, 'kvm.out');
  const pid = launchAsRootlessUser(user, {
    path: '/bin/sh',
    args: openProbe(node),
    stdout: out,
  })._unsafeUnwrap();
  pids.add(pid);
  await waitExit(pid);
  t.is(readFileSync(out, 'utf8').trim(), 'refused');
});

rootOnly('launching as uid 0 is refused (no silently-root VMM)', (t) => {
  const e = call((n) =>
    n.spawnAsUser({ path: '/bin/true', args: [], uid: 0, gid: 0, groups: [] }),
  )._unsafeUnwrapErr();
  t.is(e.code, 'ROOTLESS_ROOT');
});

rootOnly('a failed start removes the user and its runtime dir', (t) => {
  let name = '';
  let dir = '';
  const r = startRootless((user) => {
    name = user.name;
    dir = user.runtimeDir;
    created.add(user.name);
    t.true(userExists(user.name));
    return launchAsRootlessUser(user, { path: '/nonexistent/qemu', args: [] });
  });
  const e = r._unsafeUnwrapErr();
  t.is(e.kind, 'native');
  t.is(e.kind === 'native' ? e.code : '', 'ROOTLESS_SPAWN');
  t.false(userExists(name));
  t.false(existsSync(dir));
});

rootOnly('a failed start leaves no runtime dir behind', (t) => {
  let dir = '';
  const r = startRootless((user) => {
    dir = user.runtimeDir;
    created.add(user.name);
    return err({
      kind: 'rootless-lookup',
      name: user.name,
      message: 'injected start failure',
    } as const);
  });
  t.is(r._unsafeUnwrapErr().message, 'injected start failure');
  t.not(dir, '');
  t.false(existsSync(dir));
});

rootOnly('a setup step failing after useradd removes the user', (t) => {
  const scratch = mkdtempSync(path.join(tmpdir(), 'kata-ts-rootless-'));
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }));
  const blocker = path.join(scratch, 'file');
  writeFileSync(blocker, '');
  const names: string[] = [];
  const suffix = () => {
    const s = Math.random().toString(16).slice(2, 10).padEnd(8, '0');
    names.push(`kata-${s}`);
    created.add(`kata-${s}`);
    return s;
  };
  const e = createRootlessUser({ runtimeRoot: blocker, randomSuffix: suffix })._unsafeUnwrapErr();
  t.is(e.kind, 'rootless-runtime-dir');
  t.is(names.length, 1);
  t.false(userExists(names[0] ?? ''));
});

rootOnly('a name collision is retried with a fresh name', (t) => {
  const first = makeUser(t);
  const taken = first.name.slice('kata-'.length);
  const fresh = Math.random().toString(16).slice(2, 10).padEnd(8, '0');
  const seq = [taken, fresh];
  const second = makeUser(t, { randomSuffix: () => seq.shift() ?? 'ffffffff' });
  t.is(second.name, `kata-${fresh}`);
  t.not(second.uid, first.uid);
});

rootOnly('teardown twice is fine', (t) => {
  const user = makeUser(t);
  t.true(teardownRootlessUser(user).isOk());
  t.true(teardownRootlessUser(user).isOk());
  t.false(userExists(user.name));
  t.false(existsSync(user.runtimeDir));
});

rootOnly('a successful start keeps the user and its dir until teardown', (t) => {
  const r = startRootless((user) => {
    created.add(user.name);
    return launchAsRootlessUser(user, { path: '/bin/true', args: [] });
  })._unsafeUnwrap();
  t.teardown(() => teardownRootlessUser(r.user));
  t.true(userExists(r.user.name));
  t.true(existsSync(r.user.runtimeDir));
});

test('rootless requested while kata-ts is not root is a clear error', (t) => {
  const e = createRootlessUser({ euid: 1000 })._unsafeUnwrapErr();
  t.is(e.kind, 'rootless-not-root');
  t.is(
    e.message,
    'rootless VMM requested but kata-ts runs as uid 1000, not root: it cannot create the VMM user',
  );
});

test('a missing useradd is a clear error', (t) => {
  const e = findSbinTool('useradd', ['/nonexistent-a', '/nonexistent-b'])._unsafeUnwrapErr();
  t.is(
    e.message,
    'No valid executable found in paths: ["/nonexistent-a/useradd", "/nonexistent-b/useradd"]',
  );
});
