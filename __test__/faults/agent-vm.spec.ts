// Fault injection under a live sandbox (real cgroups, real paused QEMU, host-side agent):
// the agent killed in the middle of CreateContainer and during a watcher resync, QEMU killed
// during a hot-plug, virtiofsd killed. Each asserts the error the user sees, that the state file
// still validates, and that cleanup leaves nothing (see lifecycle-harness `leftovers`).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { addContainer } from '../../ts/lifecycle/container.js';
import { formatLifecycleError } from '../../ts/lifecycle/errors.js';
import { isAlive } from '../../ts/lifecycle/process-ref.js';
import { cleanup, createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';
import type { SyncEvent } from '../../ts/sync/live-sync.js';
import { VolumeSyncs } from '../../ts/sync/volume-syncs.js';
import { fixture, leftovers, watcherThreads } from '../lifecycle/lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.serial(
  'agent killed mid-CreateContainer: add fails at create-container with a connection error, state valid, cleanup removes everything',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { delays: { CreateContainer: 2_000 } });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const recorded = [sb.state.vm!.qemu!];
    const adding = addContainer(sb, { id: f.sandboxId, bundle: f.bundle });
    // Wait until the copies are done (the container is about to be created), then kill during the delay.
    const deadline = Date.now() + 30_000;
    while (sb.state.watchers.every((w) => w.phase !== 'done') && Date.now() < deadline)
      await sleep(50);
    await sleep(500);
    process.kill(f.agentPid, 'SIGKILL');
    const r = await adding;
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.like(e, { kind: 'step', step: 'create-container' });
    t.log(formatLifecycleError(e).join('\n'));
    t.regex(e.message, /clos|reset|EOF|connect|broken|EPIPE/i, 'names the lost connection');

    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap(); // schema-validated
    t.is(state.containers[0]!.status, 'creating', 'never recorded as created');

    await sb.syncs?.teardown();
    sb.agent.close();
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.is(watcherThreads(process.pid), 0);
    t.deepEqual(leftovers(f, recorded), []);
  },
);

test.serial(
  'agent killed during a watcher resync: the sync reports an error event, the sandbox deletes cleanly',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { delays: { CopyFile: 1_000 } });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const recorded = [sb.state.vm!.qemu!];
    const events: Array<{ source: string; event: SyncEvent }> = [];
    // The same syncs the lifecycle would make (it keeps a preset one), with the event callback attached.
    sb.syncs = new VolumeSyncs({
      agent: { kind: 'unix', path: sb.vm.agentSocket },
      connection: sb.agent.connection,
      debounceMs: 50,
      onEvent: (source, event) => events.push({ source, event }),
    });
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const initial = events.length;
    writeFileSync(path.join(f.configmap, 'greeting'), 'changed\n');
    // The resync's CopyFile is held 1 s by the agent: kill it inside that window.
    await sleep(400);
    process.kill(f.agentPid, 'SIGKILL');
    const deadline = Date.now() + 20_000;
    while (
      !events.slice(initial).some((x) => x.event.kind === 'error' || x.event.failed > 0) &&
      Date.now() < deadline
    )
      await sleep(50);
    // A failed resync is reported as a summary with `failed` > 0 and the first failure's message
    // (a watcher-level failure would be `kind: 'error'`); either way the message names the call.
    const failedOf = (e: SyncEvent) => (e.kind === 'error' ? 1 : e.failed);
    const messageOf = (e: SyncEvent) => (e as { message?: string }).message ?? '';
    const errors = events.slice(initial).filter((x) => failedOf(x.event) > 0);
    t.true(errors.length > 0, `an error event (got ${JSON.stringify(events)})`);
    t.log(`${errors[0]!.source}: ${messageOf(errors[0]!.event)}`);
    t.regex(messageOf(errors[0]!.event), /CopyFile .*agent connection lost/);

    t.true(new StateStore(hostConst(f.stateRoot)).read(f.sandboxId).isOk(), 'state validates');
    const deleted = await deleteSandbox(sb);
    t.true(deleted.isOk(), deleted.isErr() ? deleted.error.message : '');
    t.is(watcherThreads(process.pid), 0, 'the watcher thread stopped');
    t.deepEqual(leftovers(f, recorded), []);
  },
);

test.serial(
  'QEMU killed during the block hot-plug: add fails at hotplug naming QMP, state valid, cleanup removes everything',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const qemu = sb.state.vm!.qemu!;
    // Kill QEMU the moment the hot-plug sends its first QMP command.
    const qmp = sb.vm.vm.qmp;
    const execute = qmp.execute.bind(qmp);
    let killed = false;
    (qmp as { execute: typeof qmp.execute }).execute = ((...a: Parameters<typeof qmp.execute>) => {
      const p = execute(...a);
      if (!killed) {
        killed = true;
        process.kill(qemu.pid, 'SIGKILL');
      }
      return p;
    }) as typeof qmp.execute;
    const r = await addContainer(sb, { id: f.sandboxId, bundle: f.bundle });
    t.true(killed);
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.log(formatLifecycleError(e).join('\n'));
    t.like(e, { kind: 'step', step: 'hotplug' });
    t.regex(e.message, /QMP|QEMU|qmp/);

    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap();
    t.deepEqual(
      state.devices.map((d) => d.phase),
      ['intent'],
      'recorded as attempted, never as done',
    );

    await sb.syncs?.teardown();
    sb.agent.close();
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.false(isAlive(qemu));
    t.deepEqual(leftovers(f, [qemu]), []);
  },
);

test.serial(
  'virtiofsd killed: the host side does not notice (add still succeeds), delete stops what is left and removes everything',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const virtiofsd = sb.state.vm!.virtiofsd!;
    const qemu = sb.state.vm!.qemu!;
    process.kill(virtiofsd.pid, 'SIGKILL');
    await sleep(300);
    // Nothing on the host side watches virtiofsd: the (paused) guest never touches the share here,
    // so the add succeeds; a running guest would see its virtio-fs mount fail inside the VM.
    const r = await addContainer(sb, { id: f.sandboxId, bundle: f.bundle });
    t.log(r.isErr() ? formatLifecycleError(r.error).join('\n') : 'add succeeded');
    t.true(r.isOk());
    t.true(new StateStore(hostConst(f.stateRoot)).read(f.sandboxId).isOk(), 'state validates');
    const deleted = await deleteSandbox(sb);
    t.true(deleted.isOk(), deleted.isErr() ? deleted.error.message : '');
    t.deepEqual(leftovers(f, [virtiofsd, qemu]), []);
  },
);
