// The library lifecycle against real cgroups, a real (paused) QEMU and a host-side agent:
// create → add → start → live sync → kill → wait → remove → delete, and adding a second
// container by re-planning with the recorded random draws.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  addContainer,
  kill,
  removeContainer,
  startContainer,
  wait,
} from '../../ts/lifecycle/container.js';
import { createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';
import { fixture, leftovers, watcherThreads, type Fixture } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

const waitFor = async (check: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !check()) await new Promise((r) => setTimeout(r, 25));
  return check();
};

/** The configmap's copy in the host agent's root. */
function guestCopy(f: Fixture): string {
  const dir = path.join(f.agentRoot, 'run/kata-containers/shared/containers');
  const name = readdirSync(dir).find((n) => n.endsWith('-config'))!;
  return path.join(dir, name, 'greeting');
}

test.serial(
  'create, add, start, live sync, kill, wait, remove, delete leaves nothing',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const store = new StateStore(hostConst(f.stateRoot));
    t.is(store.read(f.sandboxId)._unsafeUnwrap().status, 'ready');
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const state = store.read(f.sandboxId)._unsafeUnwrap();
    t.deepEqual(
      state.devices.map((d) => [d.id, d.phase]),
      [['drive-0', 'done']],
    );
    t.deepEqual(
      state.watchers.map((w) => w.phase),
      ['done'],
    );
    t.is(watcherThreads(process.pid), 1);
    (await startContainer(sb, f.sandboxId))._unsafeUnwrap();
    t.is(readFileSync(guestCopy(f), 'utf8'), 'hello\n');
    const shared = path.join(f.agentRoot, 'run/kata-containers/shared/containers');
    const hosts = readdirSync(shared).find((n) => n.endsWith('-hosts'))!;
    t.is(
      readFileSync(path.join(shared, hosts), 'utf8'),
      '127.0.0.1 localhost\n',
      'the file mount was copied once',
    );

    writeFileSync(path.join(f.configmap, 'greeting'), 'updated\n');
    t.true(
      await waitFor(() => readFileSync(guestCopy(f), 'utf8') === 'updated\n'),
      'live sync reached the guest copy',
    );

    const status = wait(sb, f.sandboxId);
    (await kill(sb, f.sandboxId, 15))._unsafeUnwrap();
    t.is((await status)._unsafeUnwrap(), 128 + 15);
    t.is(store.read(f.sandboxId)._unsafeUnwrap().containers[0]!.exitStatus, 143);
    (await removeContainer(sb, f.sandboxId))._unsafeUnwrap();
    t.is(watcherThreads(process.pid), 0);
    // The watcher sent on the sandbox's own connection and left it open.
    t.is((await sb.agent.check())._unsafeUnwrap(), 1);
    const qemu = sb.vm.vm.pid;
    const report = (await deleteSandbox(sb))._unsafeUnwrap();
    t.true(report.actions.includes('deleted cgroups'));
    t.deepEqual(leftovers(f), []);
    t.false(
      existsSync(`/proc/${qemu}/cmdline`) &&
        readFileSync(`/proc/${qemu}/cmdline`, 'utf8').includes(f.stateRoot),
    );
    t.true(sb.timings['boot']! > 0 && sb.timings['teardown']! > 0);
  },
);

test.serial(
  'a second container is re-planned with the recorded random draws: earlier parts unchanged',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    const first = (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const drawnBefore = [...sb.state.random];
    const second = (await addContainer(sb, { id: 'app', bundle: f.bundle }))._unsafeUnwrap();
    t.deepEqual(sb.plan.containers[0], first, 'the sandbox container plans the same');
    t.deepEqual(sb.state.random.slice(0, drawnBefore.length), drawnBefore);
    t.true(sb.state.random.length > drawnBefore.length, 'the new container drew fresh names');
    t.deepEqual(
      second.blockDevices.map((d) => d.id),
      ['drive-1'],
    );
    t.deepEqual(
      sb.state.devices.map((d) => d.id),
      ['drive-0', 'drive-1'],
    );
    // Both containers copy the same configmap: one watcher fans out to both destinations.
    t.is(sb.syncs?.sources().length, 1);
    t.is(watcherThreads(process.pid), 1);
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.deepEqual(leftovers(f), []);
  },
);

test.serial(
  'the initdata image is written where the plan puts it, cold-plugged, and removed with the sandbox',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const initdata = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';
    writeFileSync(
      f.config,
      readFileSync(f.config, 'utf8').replace(
        '[hypervisor.qemu]\n',
        `[hypervisor.qemu]\ninitdata = ${JSON.stringify(initdata)}\n`,
      ),
    );
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    const image = sb.plan.initdata!.hostPath;
    t.deepEqual(readFileSync(image), Buffer.from(sb.plan.initdata!.imageBase64, 'base64'));
    t.regex(
      readFileSync(`/proc/${sb.vm.vm.pid}/cmdline`, 'utf8'),
      new RegExp(image.replaceAll('.', '\\.')),
    );
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.false(existsSync(path.dirname(image)));
    t.deepEqual(leftovers(f), []);
  },
);

test('config the lifecycle cannot carry out is refused naming the key, before anything is made', async (t) => {
  const f = await fixture(t);
  writeFileSync(
    f.config,
    readFileSync(f.config, 'utf8').replace(/^shared_fs = .*$/m, 'shared_fs = "virtio-9p"'),
  );
  const r = await createSandbox(
    { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
    f.options,
  );
  t.like(r._unsafeUnwrapErr(), { kind: 'input' });
  t.regex(r._unsafeUnwrapErr().message, /hypervisor\.qemu\.shared_fs/);
  t.deepEqual(leftovers(f), []);
});

test.serial(
  're-planning refuses a container when the already-applied part of the plan would change',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    // Simulate inputs that changed since they were applied (host facts re-read on re-plan can).
    sb.bundles = [{ ...sb.bundles[0]!, spec: { ...sb.bundles[0]!.spec, hostname: 'edited' } }];
    const r = await addContainer(sb, { id: 'app', bundle: f.bundle });
    t.like(r._unsafeUnwrapErr(), { kind: 'step', step: 'plan' });
    t.regex(r._unsafeUnwrapErr().message, /changed what is already applied/);
    t.deepEqual(
      sb.state.containers.map((c) => c.id),
      [f.sandboxId],
      'nothing recorded for the refused container',
    );
    (await deleteSandbox(sb))._unsafeUnwrap();
  },
);
