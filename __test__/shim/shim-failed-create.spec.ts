// A sandbox create that fails inside the shim (after the lifecycle made its state: here the agent
// never answers) must leave nothing once containerd has run `shim delete`: no /run/kata-ts/<id>,
// no QEMU, no socket. Test hooks: a paused QEMU and an agent socket nobody listens on.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { alive } from '../containerd/containerd-harness.js';
import { gated, needs } from '../harness/prereq.js';
import { containerdWithShim, hookConfig, RUNTIME, specFile, tasks, until } from './shim-harness.js';

const test = gated(needs.root(), needs.containerd(), needs.qemu(), needs.guest()).serial;

test('a sandbox whose agent never answers fails Create and leaves no state, VM or socket after shim delete', async (t) => {
  t.timeout(240_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-failed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { containerd: c } = await containerdWithShim(t, {
    KATA_TS_CONFIG: hookConfig(dir),
    KATA_TS_TEST_AGENT: path.join(dir, 'nobody-listens.sock'),
    KATA_TS_QEMU_PAUSED: '1',
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  t.teardown(() => {
    if (!t.passed) t.log(c.logTail(40));
  });
  await t.throwsAsync(
    c.ctr(
      'run',
      '--rm',
      '--null-io',
      '--runtime',
      RUNTIME,
      '--config',
      await specFile(c, 'doomed', ['sleep', '1000']),
      'doomed',
    ),
  );
  t.false((await tasks(c)).has('doomed'));
  await until('the shim to exit', () => c.shimPids().every((p) => !alive(p)), 60_000);
  const { stdout } = await c.inside(
    'sh',
    '-c',
    'ls -A /run/kata-ts 2>/dev/null | wc -l; ls -A /run/containerd/s 2>/dev/null | wc -l; pgrep -c qemu-system || true',
  );
  t.deepEqual(stdout.trim().split('\n'), ['0', '0', '0']);
});
