// rootless = true through the lifecycle, as root with real users, real cgroups and a real paused
// TCG QEMU (the host-side agent stands in for the guest's): QEMU runs as the throwaway VMM user
// with only the kvm group, its QMP socket in the user's prefixed dir; delete, a failed start and
// `kata-ts cleanup` after a crash at each step leave no user, no /run/user/<uid>, no process.
// Only users recorded in this sandbox's state are ever removed (by cleanup, or by the teardown).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { addContainer, startContainer } from '../../ts/lifecycle/container.js';
import { createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import type { ProcessRef, SandboxState } from '../../ts/lifecycle/state-schema.js';
import { teardownRootlessUser, userExists, vmmGroups } from '../../ts/rootless/index.js';
import { hostConst } from '../../ts/paths.js';
import { repoRoot } from '../cli/cli-harness.js';
import {
  fixture,
  leftovers,
  type Fixture,
  type FixtureOptions,
  TEST_CLI,
} from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

const CLI = TEST_CLI;
const QEMU = '/usr/bin/qemu-system-x86_64';
const rootTest = gated(
  needs.root(),
  needs.file(QEMU, 'QEMU'),
  needs.useradd(),
  needs.guest(),
).serial;

/** `getent passwd` names starting with kata-. */
function kataUsers(): Set<string> {
  const out = execFileSync('getent', ['passwd'], { encoding: 'utf8' });
  return new Set(
    out
      .split('\n')
      .filter((l) => l.startsWith('kata-'))
      .map((l) => l.split(':')[0]!),
  );
}

function readState(f: Fixture): SandboxState | null {
  const file = path.join(f.stateRoot, f.sandboxId, 'state.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as SandboxState) : null;
}

/** The fixture with `rootless = true`; the teardown removes the state's user if cleanup did not. */
async function rootlessFixture(
  t: ExecutionContext,
  o: FixtureOptions = {},
): Promise<Fixture & { ours: Set<string> }> {
  const ours = new Set<string>();
  // Registered before the fixture's: runs after its cleanup (teardowns run in reverse order).
  t.teardown(() => {
    for (const name of ours) if (userExists(name)) teardownRootlessUser({ name });
  });
  const f = await fixture(t, o);
  const text = readFileSync(f.config, 'utf8');
  writeFileSync(
    f.config,
    text.replace('[hypervisor.qemu]\n', '[hypervisor.qemu]\nrootless = true\n'),
  );
  return { ...f, ours };
}

/** Records the state's user as ours (for the teardown) and returns it. */
function noteUser(f: { ours: Set<string> } & Fixture): SandboxState['rootlessUser'] {
  const u = readState(f)?.rootlessUser ?? null;
  if (u !== null) f.ours.add(u.name);
  return u;
}

function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return (line ?? '')
    .slice(field.length + 1)
    .trim()
    .split(/\s+/)
    .join(' ');
}

/**
 * Pids of live processes running as `uid`. Zombies are not counted: an orphaned QEMU killed by
 * cleanup is reparented to pid 1, which in this test environment may never reap it.
 */
function processesOf(uid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return (
          statusField(Number(d), 'Uid').split(' ')[0] === String(uid) &&
          !statusField(Number(d), 'State').startsWith('Z')
        );
      } catch {
        return false;
      }
    })
    .map(Number);
}

function uidOf(name: string): number | undefined {
  const line = execFileSync('getent', ['passwd'], { encoding: 'utf8' })
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line === undefined ? undefined : Number(line.split(':')[2]);
}

/** Nothing of user `name` (uid `uid`) is left: no passwd entry, no runtime dir, no process. */
function userLeftovers(name: string, uid: number | undefined): string[] {
  const left: string[] = [];
  if (kataUsers().has(name)) left.push(`user ${name}`);
  if (uid !== undefined) {
    if (existsSync(`/run/user/${uid}`)) left.push(`/run/user/${uid}`);
    left.push(...processesOf(uid).map((p) => `pid ${p} runs as ${uid}`));
  }
  return left;
}

rootTest(
  'rootless sandbox: QEMU runs as the VMM user with only the kvm group, QMP in the prefixed dir; delete removes all',
  async (t) => {
    t.timeout(120_000);
    const f = await rootlessFixture(t);
    const before = kataUsers();
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const recorded = noteUser(f)!;
    const user = sb.vmmUser!;
    t.is(recorded.name, user.name);
    t.regex(user.name, /^kata-[0-9a-f]{8}$/);
    t.true(kataUsers().has(user.name) && !before.has(user.name));
    t.is(recorded.runtimeDir, `/run/user/${user.uid}`);
    t.is(`${sb.plan.rootlessDir}`, `/run/user/${user.uid}`);

    const pid = sb.vm.vm.pid;
    t.is(statusField(pid, 'Uid'), `${user.uid} ${user.uid} ${user.uid} ${user.uid}`);
    t.is(statusField(pid, 'Gid'), `${user.gid} ${user.gid} ${user.gid} ${user.gid}`);
    t.is(statusField(pid, 'Groups'), vmmGroups(user).join(' '));
    t.is(sb.options.accel, 'tcg');

    const dirs = sb.plan.hostDirs;
    t.is(`${dirs.vm}`, `/run/user/${user.uid}/run/kata/${f.sandboxId}`);
    const state = readState(f)!;
    t.is(state.vm?.qmpSocket, `${dirs.jailerRoot}/qmp.sock`);
    t.is(statSync(state.vm!.qmpSocket).uid, user.uid, 'QEMU (as the user) bound the QMP socket');
    for (const d of [dirs.vm, dirs.jailerRoot]) {
      const st = statSync(d);
      t.deepEqual([st.uid, st.gid, st.mode & 0o777], [user.uid, user.gid, 0o750], d);
    }
    const answer = (await sb.vm.vm.qmp.execute<{ status: string }>('query-status'))._unsafeUnwrap();
    t.is(answer.status, 'prelaunch');

    const report = (await deleteSandbox(sb))._unsafeUnwrap();
    t.true(report.actions.includes(`removed user ${user.name}`));
    t.deepEqual(userLeftovers(user.name, user.uid), []);
    t.deepEqual(leftovers(f), []);
    t.false(
      existsSync(`/proc/${pid}`) && statusField(pid, 'Uid').startsWith(`${user.uid} `),
      'QEMU is gone',
    );
    t.deepEqual(
      [...kataUsers()].filter((u) => !before.has(u) && f.ours.has(u)),
      [],
    );
  },
);

rootTest(
  'rootless: the hot-plugged rootfs image is opened by QEMU as the user through a bind; delete gives it back',
  async (t) => {
    t.timeout(120_000);
    const f = await rootlessFixture(t);
    const image = path.join(f.dir, 'rootfs.img');
    const owner = statSync(image);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const user = sb.vmmUser!;
    noteUser(f);
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const state = readState(f)!;
    t.deepEqual(
      state.devices.map((d) => [d.id, d.phase]),
      [['drive-0', 'done']],
    );
    t.deepEqual(
      state.grants?.map((g) => [g.path, g.uid, g.gid, g.phase]),
      [[image, owner.uid, owner.gid, 'done']],
    );
    t.is(statSync(image).uid, user.uid);
    const bound = `${sb.plan.hostDirs.vm}/disks/drive-0`;
    t.true(state.mounts.some((m) => m.target === bound && m.phase === 'done'));
    const blocks = (
      await sb.vm.vm.qmp.execute<{ inserted?: { file: string } }[]>('query-block')
    )._unsafeUnwrap();
    t.true(
      blocks.some((b) => b.inserted?.file === bound),
      JSON.stringify(blocks),
    );
    (await startContainer(sb, f.sandboxId))._unsafeUnwrap();

    const report = (await deleteSandbox(sb))._unsafeUnwrap();
    t.true(report.actions.includes(`gave back ${image}`));
    t.deepEqual([statSync(image).uid, statSync(image).gid], [owner.uid, owner.gid]);
    t.deepEqual(userLeftovers(user.name, user.uid), []);
    t.deepEqual(leftovers(f), []);
  },
);

rootTest(
  'rootless with virtio-fs: virtiofsd stays root, its socket given to the user; QEMU (as the user) connects',
  async (t) => {
    t.timeout(120_000);
    const f = await rootlessFixture(t, { sharedFs: 'virtio-fs' });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const user = sb.vmmUser!;
    noteUser(f);
    const fsd = sb.vm.virtiofsd!;
    t.is(statusField(fsd.pid!, 'Uid').split(' ')[0], '0');
    t.is(statusField(sb.vm.vm.pid, 'Uid').split(' ')[0], String(user.uid));
    const state = readState(f)!;
    t.true(state.vm!.virtiofsSocket.startsWith(`${sb.plan.hostDirs.jailerRoot}/`));
    t.is(statSync(state.vm!.virtiofsSocket).uid, user.uid);
    t.true(
      `${sb.plan.hostDirs.sharedSandbox}`.startsWith(
        `/run/user/${user.uid}/run/kata-containers/shared/sandboxes/`,
      ),
    );
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.is(readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'), 'rootfs content\n');
    t.deepEqual(userLeftovers(user.name, user.uid), []);
    t.deepEqual(leftovers(f), []);
  },
);

rootTest(
  'rootless start failing after the user exists (agent unreachable) leaves no user, dir or process',
  async (t) => {
    t.timeout(120_000);
    const f = await rootlessFixture(t);
    let seen: { name: string; uid: number | undefined } | null = null;
    const options = {
      ...f.options,
      agentTarget: { kind: 'unix' as const, path: path.join(f.dir, 'no-agent.sock') },
      bootTimeoutMs: 1_500,
      // Observe the user while it exists (the progress callback runs just before QEMU starts).
      onProgress: () => {
        const u = noteUser(f);
        if (u !== null && seen === null) seen = { name: u.name, uid: uidOf(u.name) };
      },
    };
    const r = await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
      options,
    );
    t.true(r.isErr());
    t.regex(r._unsafeUnwrapErr().message, /agent|connect|dial/i);
    t.not(seen, null, 'the user existed during the start');
    t.not(seen!.uid, undefined);
    t.deepEqual(userLeftovers(seen!.name, seen!.uid), []);
    t.deepEqual(leftovers(f), []);
  },
);

rootTest('rootless refused clearly when kata-ts is not root or useradd is missing', async (t) => {
  const { rootlessPreflight } = await import('../../ts/lifecycle/rootless-vmm.js');
  t.regex(rootlessPreflight('sb', 1000)?.message ?? '', /kata-ts runs as uid 1000, not root/);
  t.regex(
    rootlessPreflight('sb', 0, ['/nonexistent'])?.message ?? '',
    /useradd is missing: No valid executable found in paths: \["\/nonexistent\/useradd"\]/,
  );
  t.is(rootlessPreflight('sb', 0), null);
});

test('the accelerator is the one the VMM user can open: /dev/kvm 0600 root → TCG', async (t) => {
  const { userCanOpenRw, vmmAccel } = await import('../../ts/lifecycle/rootless-vmm.js');
  const user = {
    name: 'kata-x',
    uid: 64_998,
    gid: 64_998,
    kvmGid: 0,
    runtimeDir: hostConst('/run/user/64998'),
  };
  const kvm = existsSync('/dev/kvm') ? statSync('/dev/kvm') : null;
  if (kvm !== null && (kvm.mode & 0o066) === 0) {
    t.false(userCanOpenRw('/dev/kvm', user.uid, [user.gid]));
    t.is(vmmAccel('kvm', user).accel, 'tcg');
  }
  t.is(vmmAccel('tcg', user).accel, 'tcg');
  t.is(vmmAccel('kvm', user, '/nonexistent').accel, 'tcg');
});

function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env,
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
  });
}

const recordedProcesses = (s: SandboxState): ProcessRef[] =>
  [s.owner, s.vm?.qemu ?? null, s.vm?.virtiofsd ?? null].filter((r): r is ProcessRef => r !== null);

for (const point of [
  'dirs',
  'cgroups',
  'vm',
  'place-vmm',
  'agent',
  'create-sandbox',
  'hotplug',
  'running',
]) {
  rootTest(
    `rootless: kill -9 at ${point}, then cleanup leaves no user, dir or process; cleanup twice is fine`,
    async (t) => {
      t.timeout(120_000);
      const f = await rootlessFixture(t);
      const before = kataUsers();
      const run = await runCli(['run', '--config', f.config, '--id', f.sandboxId, f.bundle], {
        ...f.env,
        KATA_TS_CRASH_AT: point,
      });
      t.is(run.signal, 'SIGKILL', `run did not crash at ${point}: code ${run.code}, ${run.stderr}`);
      const state = readState(f)!;
      const user = noteUser(f)!;
      t.is(user.phase, 'done');
      const uid = uidOf(user.name);
      t.not(uid, undefined, 'the crash left the user behind');
      t.true(kataUsers().has(user.name) && !before.has(user.name));
      if (state.vm?.qmpSocket)
        t.true(state.vm.qmpSocket.startsWith(`/run/user/${uid}/run/kata/${f.sandboxId}/`));

      const image = path.join(f.dir, 'rootfs.img');
      const cleaned = await runCli(['cleanup', f.sandboxId], f.env);
      t.is(cleaned.code, 0, cleaned.stderr);
      t.is(statSync(image).uid, 0, 'a granted image is given back');
      t.deepEqual(userLeftovers(user.name, uid), []);
      t.deepEqual(leftovers(f, recordedProcesses(state)), []);
      const again = await runCli(['cleanup', f.sandboxId], f.env);
      t.is(again.code, 0, `cleanup is idempotent: ${again.stderr}`);
      t.deepEqual(
        [...kataUsers()].filter((u) => !before.has(u) && f.ours.has(u)),
        [],
      );
    },
  );
}

test('rootless is requested by the config or by its annotation when enable_annotations allows it', async (t) => {
  const { rootlessRequested } = await import('../../ts/lifecycle/rootless-vmm.js');
  const { parseKataConfig } = await import('../../ts/config/parse-config.js');
  const { exampleConfig, exampleBundle } = await import('../cli/cli-harness.js');
  const text = readFileSync(exampleConfig, 'utf8');
  const spec = JSON.parse(readFileSync(path.join(exampleBundle, 'config.json'), 'utf8'));
  const bundle = (annotations: Record<string, string>) => ({
    id: 'sb',
    bundleDir: exampleBundle,
    bundlePath: exampleBundle,
    spec: { ...spec, annotations },
  });
  const key = 'io.katacontainers.config.hypervisor.rootless';
  const plain = parseKataConfig(text, 'c.toml')._unsafeUnwrap().config;
  const on = parseKataConfig(
    text.replace('[hypervisor.qemu]\n', '[hypervisor.qemu]\nrootless = true\n'),
    'c.toml',
  )._unsafeUnwrap().config;
  const allowed = parseKataConfig(
    text.replace(/^enable_annotations = \[/m, 'enable_annotations = ["rootless", '),
    'c.toml',
  )._unsafeUnwrap().config;
  t.false(rootlessRequested(plain, bundle({})));
  t.true(rootlessRequested(on, bundle({})));
  t.false(rootlessRequested(plain, bundle({ [key]: 'true' })), 'not allowed by enable_annotations');
  t.true(rootlessRequested(allowed, bundle({ [key]: 'true' })));
});
