// The shim-facing commands as separate processes: create (background owner), state, start, kill,
// wait, delete; and delete of a sandbox whose owner was killed.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { SandboxState } from '../../ts/lifecycle/state-schema.js';
import { killRecorded } from '../../ts/lifecycle/process-ref.js';
import { repoRoot } from '../cli/cli-harness.js';
import { fixture, leftovers, type Fixture, TEST_CLI } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

const CLI = TEST_CLI;

function cli(
  f: Fixture,
  args: string[],
  env: NodeJS.ProcessEnv = f.env,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env,
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const state = async (f: Fixture) =>
  JSON.parse((await cli(f, ['state', f.sandboxId])).stdout) as SandboxState;

test.serial('create, state, start, kill, wait, delete as separate processes', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t);
  const created = await cli(f, ['create', '--config', f.config, '--bundle', f.bundle, f.sandboxId]);
  t.is(created.code, 0, created.stderr);
  let s = await state(f);
  t.is(s.status, 'ready');
  t.is(s.containers[0]!.status, 'created');
  t.not(s.owner!.pid, process.pid);
  t.is((await cli(f, ['start', f.sandboxId])).code, 0);
  t.is((await state(f)).containers[0]!.status, 'running');
  const waiting = cli(f, ['wait', f.sandboxId]);
  t.is((await cli(f, ['kill', f.sandboxId, 'KILL'])).code, 0);
  t.is((await waiting).stdout, '137\n');
  s = await state(f);
  const deleted = await cli(f, ['delete', f.sandboxId]);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(leftovers(f, [s.owner!, s.vm!.qemu!]), []);
});

test.serial('delete after the owner was killed cleans up', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t);
  t.is((await cli(f, ['create', '--config', f.config, '--bundle', f.bundle, f.sandboxId])).code, 0);
  const s = await state(f);
  await killRecorded(s.owner!);
  const deleted = await cli(f, ['delete', f.sandboxId]);
  t.is(deleted.code, 0, deleted.stderr);
  t.deepEqual(leftovers(f, [s.owner!, s.vm!.qemu!]), []);
});

test.serial(
  'the owner killed while stopping: delete falls back to cleanup and nothing is left',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const created = await cli(
      f,
      ['create', '--config', f.config, '--bundle', f.bundle, f.sandboxId],
      { ...f.env, KATA_TS_CRASH_AT: 'stop' },
    );
    t.is(created.code, 0, created.stderr);
    const s = await state(f);
    t.is((await cli(f, ['start', f.sandboxId])).code, 0);
    const deleted = await cli(f, ['delete', f.sandboxId]);
    t.is(deleted.code, 0, deleted.stderr);
    t.deepEqual(leftovers(f, [s.owner!, s.vm!.qemu!]), []);
  },
);

test('create with a bad bundle exits 2 naming the problem; nothing is left', async (t) => {
  const f = await fixture(t);
  const r = await cli(f, [
    'create',
    '--config',
    f.config,
    '--bundle',
    path.join(f.dir, 'missing'),
    f.sandboxId,
  ]);
  t.is(r.code, 2);
  t.regex(r.stderr, /^kata-ts: .*missing/m);
  t.deepEqual(leftovers(f), []);
});
