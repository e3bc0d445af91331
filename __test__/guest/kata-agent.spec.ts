// Upstream kata-agent (../shared/peers/kata-agent, 4.1.0, built static with `init-data` by
// scripts/build-kata-agent.sh) in the TCG guest: build/guest/initramfs-kata.cpio.gz, where /init
// starts kata-agent on unix:///run/kata-agent.sock and kata-ts-serial-relay joins the
// `agent.channel.0` virtio-serial port to it. The host side is the one every guest suite uses
// (bootAgentGuest, the TS agent client, the planner's requests): it does not know which agent
// answers. Checked here: health Check and GetGuestDetails through the relay, a fresh relay
// session per host connection, and the planned pod's containers run by kata-agent.
// Skipped, saying why, when the image is absent (no ../shared: a user's clone); with CI=true
// scripts/run-tests.sh fails on that skip.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { connectAgent } from '../../ts/agent/client.js';
import { bootAgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { logTail } from '../../ts/qemu/vm.js';
import type { ContainerPlan } from '../../ts/plan/plan.js';
import { gated, needs } from '../harness/prereq.js';
import { alive, track } from '../qemu/qemu-harness.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';
import { KATA_IMAGE, missingKataImage } from './guest-images.js';
import {
  CONFIGMAP_TEXT,
  createAndStart,
  createSandbox,
  podFixture,
  prepareContainer,
  readAllStdout,
  removeContainer,
  SHM_SIZE_MIB,
  waitInit,
} from './planned-pod.js';

const test = gated(
  needs.root(),
  needs.qemu(),
  missingKataImage(),
  needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)'),
);
const BOOT_TIMEOUT_MS = 120_000;
const POWEROFF_TIMEOUT_MS = 20_000;

/** `runc spec`'s default capability set (the same list in every set but ambient and inheritable). */
const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
function withRuncDefaultCapabilities(c: ContainerPlan): ContainerPlan {
  const req = c.createContainer as { OCI?: { Process?: Record<string, unknown> } };
  if (req.OCI?.Process === undefined || req.OCI.Process.Capabilities !== undefined) return c;
  const caps = {
    Bounding: RUNC_DEFAULT_CAPS,
    Effective: RUNC_DEFAULT_CAPS,
    Inheritable: [],
    Permitted: RUNC_DEFAULT_CAPS,
    Ambient: [],
  };
  return {
    ...c,
    createContainer: {
      ...req,
      OCI: { ...req.OCI, Process: { ...req.OCI.Process, Capabilities: caps } },
    } as ContainerPlan['createContainer'],
  };
}

async function bootKata(t: ExecutionContext) {
  const f = podFixture('virtio-blk-pci');
  t.teardown(() => f.cleanup());
  const consoleLog = path.join(f.dir, 'console.log');
  const booted = await bootAgentGuest({
    plan: f.plan,
    config: f.hv,
    image: KATA_IMAGE,
    runDir: path.join(f.dir, 'run'),
    consoleLog,
    bootTimeoutMs: BOOT_TIMEOUT_MS,
  });
  if (booted.isErr())
    throw new Error(
      `${booted.error.message}${'console' in booted.error ? `\nconsole:\n${booted.error.console}` : ''}`,
    );
  const g = booted.value;
  track(g.vm.vm.pid, g.vm.vm.exited);
  t.teardown(() => g.stop());
  t.log(`kata-agent image: spawn → health SERVING in ${g.bootMs.toFixed(0)} ms (TCG)`);
  return { f, g, consoleLog };
}

test.serial(
  'kata-agent: health Check and GetGuestDetails (agent 4.1.0) through the serial relay; each host connection gets its own session',
  async (t) => {
    t.timeout(200_000);
    const { g, consoleLog } = await bootKata(t);
    t.regex(
      readFileSync(consoleLog, 'utf8'),
      /kata-agent on unix:\/\/\/run\/kata-agent\.sock, relayed from \/dev\/vport\d+p\d+/,
    );
    const details = (await g.agent.getGuestDetails())._unsafeUnwrap();
    t.is(details.agentDetails?.version, '4.1.0', 'upstream kata-agent answered, not ours');
    t.false(details.agentDetails?.initDaemon, 'started by our /init, not PID 1');
    t.true(
      details.agentDetails?.storageHandlers.includes('blk'),
      `storage handlers: ${details.agentDetails?.storageHandlers.join(',')}`,
    );
    t.true(details.memBlockSizeBytes > 0n, 'memory block size read from the guest kernel');

    // The relay ends a session when the host disconnects and opens a new agent connection for the next.
    // Known limitation (see README "Guest images"): the relay learns of a disconnect from the port's
    // POLLHUP inside the TCG guest; a host that reconnects before the guest has seen it can have its
    // first bytes dropped with the old session (seen once in CI under load). Until the relay frames
    // sessions, the host waits for the guest to see the hang-up before it reconnects.
    const RELAY_HANGUP_GRACE_MS = 2_000;
    g.agent.close();
    for (let i = 0; i < 2; i++) {
      await new Promise((r) => setTimeout(r, RELAY_HANGUP_GRACE_MS));
      const again = await connectAgent(
        { kind: 'unix', path: g.vm.agentSocket },
        { dialTimeoutMs: 10_000, healthTimeoutMs: 30_000 },
      );
      if (again.isErr())
        throw new Error(`reconnect ${i}: ${again.error.message}\nconsole:\n${logTail(consoleLog)}`);
      t.is(
        (await again.value.check())._unsafeUnwrap(),
        1,
        `Check SERVING on host connection ${i + 2}`,
      );
      const v = (await again.value.getGuestDetails())._unsafeUnwrap();
      t.is(v.agentDetails?.version, '4.1.0');
      again.value.close();
    }
  },
);

test.serial(
  'kata-agent: the planned pod runs (CreateSandbox, hot-plugged virtio-blk rootfs, copied configmap, container output, sandbox /dev/shm), DestroySandbox powers off',
  async (t) => {
    t.timeout(240_000);
    const { f, g, consoleLog } = await bootKata(t);
    // examples/bundle/config.json (the fixture's bundle) has no process.capabilities; containerd's
    // and `runc spec`'s bundles always do, and kata-agent refuses a process without them
    // ("missing process capabilities"). Until the fixture carries them, add runc's default set
    // to the planned request, as the planner does for a bundle that has them (ts/plan/requests-oci.ts).
    const [sb, app] = f.plan.containers.map(withRuncDefaultCapabilities);
    const target = { kind: 'unix' as const, path: g.vm.agentSocket };
    try {
      await createSandbox(g.agent, f.plan);
      await prepareContainer(g.agent, target, g.vm.vm.qmp, sb!);
      await createAndStart(g.agent, sb!);
      t.is(
        await readAllStdout(g.agent, sb!.id),
        CONFIGMAP_TEXT,
        'configmap read back inside the container',
      );
      t.is(await waitInit(g.agent, sb!.id), 0);

      await prepareContainer(g.agent, target, g.vm.vm.qmp, app!);
      await createAndStart(g.agent, app!);
      const df = await readAllStdout(g.agent, app!.id);
      t.is(await waitInit(g.agent, app!.id), 0);
      const row = df.split('\n').find((l) => /\s\/dev\/shm$/.test(l));
      // Deliberate upstream difference: kata-ts sends the sandbox shm Storage as runtime-go does
      // (ephemeral, `size=<planned bytes>` among its options), but kata-agent 4.1.0's ephemeral
      // handler drops every option but fsGroup (storage/ephemeral_handler.rs) and mounts a
      // default-size tmpfs (half the guest's RAM). Our agent honours the size (e2e.spec.ts).
      const kib = Number(row?.trim().split(/\s+/)[1]);
      t.true(
        row?.startsWith('shm ') === true && kib > SHM_SIZE_MIB * 1024,
        `kata-agent's default-size sandbox shm tmpfs; df: ${df}`,
      );
      t.log(
        `kata-agent: /dev/shm ${kib} KiB (planned ${SHM_SIZE_MIB * 1024} KiB, ignored by kata-agent 4.1.0)`,
      );

      for (const c of [app!, sb!]) await removeContainer(g.agent, g.vm.vm.qmp, c);
      (await g.agent.destroySandbox())._unsafeUnwrap();
    } catch (e) {
      t.log(`console:\n${logTail(consoleLog, 6000)}`);
      throw e;
    }
    const poweredOff = await Promise.race([
      g.vm.vm.exited.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), POWEROFF_TIMEOUT_MS)),
    ]);
    t.true(poweredOff, 'kata-agent exits after DestroySandbox and /init powers the guest off');
    await g.stop();
    t.false(alive(g.vm.vm.pid), 'no QEMU left');
  },
);
