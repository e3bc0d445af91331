// `kata-ts plan` prints the sandbox's host dirs, rootless-prefixed when rootless is on.
import test from 'ava';
import { runCli, Scratch } from './cli-harness.js';

const FACTS = {
  cgroupVersion: 'v1',
  hostCpus: 8,
  hostMemoryMiB: 16384,
  guestProtection: 'none',
  blockDevices: {},
};

test('rootless = true with rootlessDir in the host facts: every host dir below it', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.remove());
  const config = s.config([['hypervisor.qemu', 'rootless', 'true']]);
  const facts = s.file('facts.json', JSON.stringify({ ...FACTS, rootlessDir: '/run/user/4242' }));
  const r = await runCli([
    'plan',
    '--host-facts',
    facts,
    '--config',
    config,
    '--sandbox',
    `sb=${s.bundle('sb')}`,
  ]);
  t.is(r.code, 0, r.stderr);
  const p = JSON.parse(r.stdout);
  t.is(p.rootlessDir, '/run/user/4242');
  t.like(p.hostDirs, {
    vm: '/run/user/4242/run/kata/sb',
    sharedRw: '/run/user/4242/run/kata-containers/shared/sandboxes/sb/rw',
  });
  for (const d of Object.values(p.hostDirs))
    t.true((d as string).startsWith('/run/user/4242/run/'));
  t.is(
    p.containers[0].rootfs.sharedBind.hostPath,
    '/run/user/4242/run/kata-containers/shared/sandboxes/sb/rw/passthrough/sb/rootfs',
  );
  t.is(
    p.containers[0].rootfs.guestPath,
    '/run/kata-containers/shared/containers/passthrough/sb/rootfs',
  );
});

test('a host facts file with a non-string rootlessDir is refused naming the field', async (t) => {
  const s = new Scratch();
  t.teardown(() => s.remove());
  const facts = s.file('facts.json', JSON.stringify({ ...FACTS, rootlessDir: 7 }));
  const r = await runCli([
    'plan',
    '--host-facts',
    facts,
    '--config',
    s.config(),
    '--sandbox',
    `sb=${s.bundle('sb')}`,
  ]);
  t.is(r.code, 2);
  t.regex(r.stderr, /^kata-ts: .*facts\.json: rootlessDir: /);
});
