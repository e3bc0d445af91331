// End to end: the planner's plan for a pod (sandbox `sb` + container `app`, shared_fs = none,
// busybox ext4 rootfs per container) carried out against our agent in the guest booted under TCG:
// CreateSandbox (shm storage with its size), rootfs hot-plug (virtio-blk, then virtio-scsi),
// configmap directory copied with CopyFile, CreateContainer/StartContainer, output read back
// over ttrpc, WaitProcess, RemoveContainer, unplug, DestroySandbox, the VM gone.
// Skipped when `make guest` has not built build/guest and build/rootfs.
import { existsSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { BlockDriver } from '../../ts/config/kata-config.js';
import { bootAgentGuest, type AgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { logTail } from '../../ts/qemu/vm.js';
import { alive, track } from '../qemu/qemu-harness.js';
import { CONFIGMAP_TEXT, createAndStart, createSandbox, GUEST_IMAGE, missingGuestParts, podFixture, prepareContainer, readAllStdout, removeContainer, SHM_SIZE_MIB, waitInit } from './guest-fixture.js';

const missing = missingGuestParts();
const BOOT_TIMEOUT_MS = 60_000;
/** After DestroySandbox the agent (PID 1) powers the guest off. */
const POWEROFF_TIMEOUT_MS = 15_000;

async function bootPod(t: ExecutionContext, driver: BlockDriver) {
  const fixture = podFixture(driver);
  t.teardown(() => fixture.cleanup());
  const consoleLog = path.join(fixture.dir, 'console.log');
  const booted = await bootAgentGuest({ plan: fixture.plan, config: fixture.hv, image: GUEST_IMAGE!, runDir: path.join(fixture.dir, 'run'), consoleLog, bootTimeoutMs: BOOT_TIMEOUT_MS });
  if (booted.isErr()) {
    const e = booted.error;
    throw new Error(`${e.message}${'console' in e ? `\nconsole:\n${e.console}` : ''}`);
  }
  const guest: AgentGuest = booted.value;
  track(guest.vm.vm.pid, guest.vm.vm.exited);
  t.teardown(() => guest.stop());
  t.log(`${driver}: booted to agent SERVING in ${guest.bootMs.toFixed(0)} ms`);
  return { fixture, guest, consoleLog };
}

/** Runs one planned container to completion; returns its stdout and exit status. */
async function runContainer(guest: AgentGuest, c: Parameters<typeof prepareContainer>[2]) {
  await prepareContainer(guest.agent, guest.vm.vm.qmp, c);
  const start = performance.now();
  await createAndStart(guest.agent, c);
  let firstByteMs = 0;
  const stdout = await readAllStdout(guest.agent, c.id, () => (firstByteMs = performance.now() - start));
  const status = await waitInit(guest.agent, c.id);
  return { stdout, status, firstByteMs };
}

function podTest(driver: BlockDriver) {
  test.serial(`${driver}: configmap file and planned /dev/shm size read back from containers on a hot-plugged busybox ext4 rootfs; everything torn down`, async (t) => {
    t.timeout(110_000);
    const { fixture, guest, consoleLog } = await bootPod(t, driver);
    const [sb, app] = fixture.plan.containers;
    t.is(fixture.plan.shmSizeBytes, SHM_SIZE_MIB << 20);
    t.is(sb!.copies.length, 1, 'the configmap directory is a copy step');
    try {
      await createSandbox(guest.agent, fixture.plan);

      const cat = await runContainer(guest, sb!);
      t.is(cat.stdout, CONFIGMAP_TEXT);
      t.is(cat.status, 0);
      t.log(`${driver}: sb CreateContainer → first byte ${cat.firstByteMs.toFixed(0)} ms`);

      const df = await runContainer(guest, app!);
      t.is(df.status, 0);
      // busybox `df -k`: Filesystem 1K-blocks Used Available Use% Mounted on
      const row = df.stdout.split('\n').find((l) => /\s\/dev\/shm$/.test(l));
      t.truthy(row, `df output: ${df.stdout}`);
      t.is(Number(row!.trim().split(/\s+/)[1]), SHM_SIZE_MIB * 1024, 'planned shm size in 1K blocks');

      for (const c of [app!, sb!]) await removeContainer(guest.agent, guest.vm.vm.qmp, c);
      (await guest.agent.destroySandbox())._unsafeUnwrap();
    } catch (e) {
      t.log(`console:\n${logTail(consoleLog, 4000)}`);
      throw e;
    }
    const pid = guest.vm.vm.pid;
    const poweredOff = await Promise.race([guest.vm.vm.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), POWEROFF_TIMEOUT_MS))]);
    t.true(poweredOff, 'QEMU exits after DestroySandbox (the agent powers the guest off)');
    await guest.stop();
    t.false(alive(pid), 'no QEMU process left');
    fixture.cleanup();
    t.false(existsSync(fixture.dir), 'temp dir removed');
  });
}

if (missing === null) {
  podTest('virtio-blk-pci');
  podTest('virtio-scsi');
} else {
  test.skip(`guest end-to-end: ${missing}`, () => undefined);
}
