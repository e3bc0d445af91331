// Faults under a live sandbox: QEMU killed while a container runs (the sandbox reports it, in
// process and to a fresh `kata-ts state`; cleanup works), and the agent connection dropped in
// the middle of a volume copy (the add fails naming the step; the state stays valid and cleanup
// removes everything).
import { addContainer, startContainer, wait } from '../../ts/lifecycle/container.js';
import { cleanup, createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';
import { runCli } from '../cli/cli-harness.js';
import { fixture, leftovers, watcherThreads } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

test.serial(
  'QEMU killed while the container runs: wait reports vm-gone, state says failed, cleanup removes everything',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    (await startContainer(sb, f.sandboxId))._unsafeUnwrap();
    const status = wait(sb, f.sandboxId);
    process.kill(sb.vm.vm.pid, 'SIGKILL');
    const r = await status;
    t.true(r.isErr());
    t.is(r._unsafeUnwrapErr().kind, 'vm-gone');
    t.regex(r._unsafeUnwrapErr().message, /QEMU exited \(signal SIGKILL\)/);
    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap();
    t.is(state.status, 'failed');

    const shown = await runCli(['state', '--state-root', f.stateRoot, f.sandboxId]);
    t.is(shown.code, 0, shown.stderr);
    t.is(JSON.parse(shown.stdout).status, 'failed');

    await sb.syncs?.teardown();
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.deepEqual(leftovers(f), []);
  },
);

test.serial(
  'agent connection dropped mid-copy: add fails at copy, state valid, cleanup removes everything',
  async (t) => {
    t.timeout(120_000);
    // Each CopyFile takes 2 s, so the copy of the configmap is still running when the agent dies.
    const f = await fixture(t, { delays: { CopyFile: 2_000 }, configmapFiles: 4 });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const adding = addContainer(sb, { id: f.sandboxId, bundle: f.bundle });
    await new Promise((r) => setTimeout(r, 1_000));
    process.kill(f.agentPid, 'SIGKILL');
    const r = await adding;
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.like(e, { kind: 'step', step: 'copy' });

    const store = new StateStore(hostConst(f.stateRoot));
    const state = store.read(f.sandboxId)._unsafeUnwrap(); // validated by the schema
    t.is(state.containers[0]!.status, 'creating');
    t.deepEqual(
      state.devices.map((d) => d.phase),
      ['done'],
    );
    t.deepEqual(
      state.watchers.map((w) => w.phase),
      ['intent'],
      'the watcher is recorded as attempted, never as running',
    );
    // The watcher's thread ends asynchronously after the failed copy: give it 5 s to go.
    for (let i = 0; i < 50 && watcherThreads(process.pid) > 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    t.is(watcherThreads(process.pid), 0, 'no watcher thread survived the failed copy');

    sb.agent.close();
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.deepEqual(leftovers(f), []);
  },
);
