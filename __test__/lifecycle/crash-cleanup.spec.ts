// kill -9 of `kata-ts run` at each lifecycle step (KATA_TS_CRASH_AT makes it SIGKILL itself right
// after the step acted, before the state says so), then `kata-ts cleanup` from a fresh process:
// no cgroups, dirs, mounts, QEMU or watcher-owning processes remain, checked by pid and by path.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { CRASH_POINTS } from '../../ts/lifecycle/crash-point.js';
import type { ProcessRef, SandboxState } from '../../ts/lifecycle/state-schema.js';
import { repoRoot } from '../cli/cli-harness.js';
import { fixture, leftovers, TEST_CLI } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

const CLI = TEST_CLI;

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
    // A crash point that is never reached would leave the container running forever.
    const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(guard);
      resolve({ code, signal, stderr });
    });
  });
}

const kataUsers = () =>
  new Set(
    readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('kata-'))
      .map((l) => l.split(':')[0]),
  );

function recordedProcesses(s: SandboxState): ProcessRef[] {
  return [s.owner, s.vm?.qemu ?? null, s.vm?.virtiofsd ?? null].filter(
    (r): r is ProcessRef => r !== null,
  );
}

// 'stop' needs the container to end on its own; the modelled agent's never does (see
// shim-commands.spec.ts for a crash while stopping). Serial: each test has its own time budget.
for (const point of CRASH_POINTS.filter((p) => p !== 'stop' && p !== 'cleanup')) {
  test.serial(`kill -9 at ${point}, then cleanup leaves nothing`, async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const run = await runCli(['run', '--config', f.config, '--id', f.sandboxId, f.bundle], {
      ...f.env,
      KATA_TS_CRASH_AT: point,
    });
    t.is(run.signal, 'SIGKILL', `run did not crash at ${point}: code ${run.code}, ${run.stderr}`);
    const state = JSON.parse(
      readFileSync(path.join(f.stateRoot, f.sandboxId, 'state.json'), 'utf8'),
    ) as SandboxState;
    const recorded = recordedProcesses(state);
    t.true(leftovers(f, recorded).length > 0, 'the crash left something to clean');

    const cleaned = await runCli(['cleanup', f.sandboxId], f.env);
    t.is(cleaned.code, 0, cleaned.stderr);
    t.deepEqual(leftovers(f, recorded), []);
    // Only this sandbox's user: other test files create kata-* users concurrently.
    const user = state.rootlessUser?.name;
    if (user !== undefined) t.false(kataUsers().has(user), `user ${user} removed`);
    const again = await runCli(['cleanup', f.sandboxId], f.env);
    t.is(again.code, 0, 'cleanup is idempotent');
  });
}

test.serial('kill -9 of cleanup itself: the next cleanup finishes the job', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t);
  const run = await runCli(['run', '--config', f.config, '--id', f.sandboxId, f.bundle], {
    ...f.env,
    KATA_TS_CRASH_AT: 'running',
  });
  t.is(run.signal, 'SIGKILL', run.stderr);
  const state = JSON.parse(
    readFileSync(path.join(f.stateRoot, f.sandboxId, 'state.json'), 'utf8'),
  ) as SandboxState;
  const interrupted = await runCli(['cleanup', f.sandboxId], {
    ...f.env,
    KATA_TS_CRASH_AT: 'cleanup',
  });
  t.is(interrupted.signal, 'SIGKILL');
  const half = JSON.parse(
    readFileSync(path.join(f.stateRoot, f.sandboxId, 'state.json'), 'utf8'),
  ) as SandboxState;
  t.is(half.status, 'deleting');
  t.is(half.vm?.phase, 'removed', 'the processes were undone and recorded so');
  t.is(half.cgroups?.phase, 'done', 'the cgroups were not reached');
  const cleaned = await runCli(['cleanup', f.sandboxId], f.env);
  t.is(cleaned.code, 0, cleaned.stderr);
  t.deepEqual(leftovers(f, recordedProcesses(state)), []);
});

test.serial(
  'virtio-fs: kill -9 with the shared dir and rootfs bind mounted, then cleanup unmounts all and keeps the bundle',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    const run = await runCli(['run', '--config', f.config, '--id', f.sandboxId, f.bundle], {
      ...f.env,
      KATA_TS_CRASH_AT: 'copy',
    });
    t.is(run.signal, 'SIGKILL', run.stderr);
    const state = JSON.parse(
      readFileSync(path.join(f.stateRoot, f.sandboxId, 'state.json'), 'utf8'),
    ) as SandboxState;
    t.true(state.mounts.length >= 3, 'rw, ro and the rootfs bind were mounted');
    const cleaned = await runCli(['cleanup', f.sandboxId], f.env);
    t.is(cleaned.code, 0, cleaned.stderr);
    t.is(readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'), 'rootfs content\n');
    t.deepEqual(leftovers(f, recordedProcesses(state)), []);
  },
);
