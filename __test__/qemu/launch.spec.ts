// launchVm: the whole start (virtiofsd, QEMU, QMP) from a plan and the whole stop, on real QEMU.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { usableAccel } from '../../ts/qemu/accel.js';
import { detectAgentChannel, launchVm, type RunningVm } from '../../ts/qemu/launch.js';
import { alive, configWith, scratchDir, smallPlan, track } from './qemu-harness.js';

function guard(t: ExecutionContext, running: RunningVm): void {
  track(running.vm.pid, running.vm.exited);
  if (running.virtiofsd) track(running.virtiofsd.pid, running.virtiofsd.exited);
  t.teardown(async () => {
    await running.vm.kill();
    await running.virtiofsd?.kill();
  });
}

test.serial(
  'virtio-fs sandbox: virtiofsd and QEMU start from the plan; stop leaves no process and no socket',
  async (t) => {
    t.timeout(60_000);
    const dir = scratchDir(t);
    const hv = configWith({ sharedFs: 'virtio-fs' });
    const { accel } = await usableAccel();
    const r = await launchVm({
      plan: smallPlan(hv),
      config: hv,
      runDir: path.join(dir, 'run'),
      sharedDir: dir,
      launch: { accel, paused: true },
    });
    const running = r._unsafeUnwrap();
    guard(t, running);
    const fsdPid = running.virtiofsd!.pid!;
    t.true(alive(fsdPid) && alive(running.vm.pid));
    t.like((await running.vm.qmp.execute<{ status: string }>('query-status'))._unsafeUnwrap(), {
      status: 'prelaunch',
    });
    await running.stop();
    t.false(alive(running.vm.pid));
    t.false(alive(fsdPid));
    t.deepEqual(
      readdirSync(path.join(dir, 'run')).filter((f) => f.endsWith('.sock')),
      [],
    );
  },
);

test.serial(
  'an unexpected QEMU exit is reported with the log; a bad plan is refused before anything starts',
  async (t) => {
    t.timeout(60_000);
    const dir = scratchDir(t);
    const hv = configWith({});
    const { accel } = await usableAccel();
    let reported = '';
    const running = (
      await launchVm({
        plan: smallPlan(hv),
        config: hv,
        runDir: dir,
        launch: { accel, paused: true },
        onUnexpectedExit: (m) => (reported = m),
      })
    )._unsafeUnwrap();
    guard(t, running);
    process.kill(running.vm.pid, 'SIGKILL'); // our QEMU, by pid
    await running.vm.exited;
    t.regex(reported, /^QEMU exited \(signal SIGKILL\)/);

    const bad = await launchVm({
      plan: smallPlan(hv),
      config: { ...hv, machineType: 'pc' },
      runDir: path.join(dir, 'bad'),
      launch: { accel },
    });
    t.like(bad._unsafeUnwrapErr(), {
      kind: 'vm-cmdline',
      message: 'hypervisor.qemu.machine_type: the QEMU driver drives q35 only',
    });
    t.false(existsSync(path.join(dir, 'bad', 'qemu.log')));
  },
);

test('agent channel: vhost-vsock only when its device opens, else virtio-serial on the run dir', (t) => {
  const dir = scratchDir(t);
  t.deepEqual(detectAgentChannel('/run/vm', 3, path.join(dir, 'no-vhost-vsock')), {
    kind: 'virtio-serial',
    socketPath: '/run/vm/agent.sock',
    portName: 'agent.channel.0',
  });
  t.deepEqual(detectAgentChannel('/run/vm', 3, '/dev/null'), { kind: 'vhost-vsock', guestCid: 3 });
});
