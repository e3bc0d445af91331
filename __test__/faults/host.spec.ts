// Host-side faults before or beside the VM: systemd unreachable for a systemd-driver sandbox,
// and a full disk (the state root, the agent's root on a small tmpfs). Each asserts the error the
// user sees, that no half-made state is left, and that cleanup leaves nothing.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { addContainer } from '../../ts/lifecycle/container.js';
import { formatLifecycleError } from '../../ts/lifecycle/errors.js';
import { cleanup, createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';
import { HOST_INITDATA_DIR } from '../../ts/plan/host-dirs.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { fixture, leftovers, watcherThreads } from '../lifecycle/lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

/** Mounts a tmpfs of `size` at `dir` (created); lazily unmounted in teardown. */
function smallTmpfs(t: ExecutionContext, dir: string, size: string): void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'kata-ts-fault', dir]);
  t.teardown(() => {
    try {
      execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  });
}

/** leftovers() without the test's own tmpfs mounts. */
const left = (...a: Parameters<typeof leftovers>) =>
  leftovers(...a).filter((l) => !l.includes('kata-ts-fault'));

/** Fills the filesystem holding `dir` until ENOSPC. */
function fill(dir: string): void {
  try {
    writeFileSync(path.join(dir, '.filler'), Buffer.alloc(64 << 20));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  }
}

test.serial(
  'systemd unreachable for a systemd-driver sandbox: create fails at cgroups naming D-Bus, no VM or cgroup made; cleanup names D-Bus and keeps the state for a retry',
  async (t) => {
    t.timeout(60_000);
    const f = await fixture(t);
    const specFile = path.join(f.bundle, 'config.json');
    const spec = JSON.parse(readFileSync(specFile, 'utf8'));
    spec.linux.cgroupsPath = `system.slice:kata:${f.sandboxId}`;
    writeFileSync(specFile, JSON.stringify(spec));
    const r = await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
      { ...f.options, cgroupHost: { systemd: { busAddress: `unix:path=${f.dir}/no-such-bus` } } },
    );
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.log(formatLifecycleError(e).join('\n'));
    t.like(e, { kind: 'step', step: 'cgroups' });
    t.regex(e.message, /bus|D-?Bus|systemd/i);
    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap(); // schema-validated
    t.is(state.vm?.qemu ?? null, null, 'no VM was started');
    t.is(state.cgroups?.phase, 'intent');
    // The recorded unit can only be confirmed gone through systemd: while the bus is unreachable
    // cleanup fails naming it and keeps the state, so a later `kata-ts cleanup` can finish.
    const cleaned = await cleanup(f.sandboxId, { stateRoot: f.stateRoot });
    t.true(cleaned.isErr());
    t.log(formatLifecycleError(cleaned._unsafeUnwrapErr()).join('\n'));
    t.regex(cleaned._unsafeUnwrapErr().message, /cannot connect to D-Bus/);
    t.true(
      new StateStore(hostConst(f.stateRoot)).read(f.sandboxId).isOk(),
      'state kept and still valid',
    );
    t.deepEqual(
      left(f).filter((l) => !l.startsWith('state dir')),
      [],
    );
    for (const h of hierarchies())
      t.false(existsSync(path.join(h, 'system.slice', `kata-${f.sandboxId}.scope`)), h);
  },
);

test.serial(
  'disk full under the state root: create fails with ENOSPC, no half-made state, nothing left',
  async (t) => {
    t.timeout(60_000);
    const f = await fixture(t);
    smallTmpfs(t, f.stateRoot, '1m');
    fill(f.stateRoot);
    const r = await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
      f.options,
    );
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.log(formatLifecycleError(e).join('\n'));
    t.regex(e.message, /ENOSPC|no space/i);
    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId);
    t.log(state.isOk() ? `state: ${state.value.status}` : `state: ${state.error.message}`);
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.deepEqual(left(f), []);
  },
);

test.serial(
  'disk full where the initdata image is written: create fails at dirs naming the image, cleanup removes the dir, nothing left',
  async (t) => {
    t.timeout(60_000);
    const f = await fixture(t);
    const initdata = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';
    writeFileSync(
      f.config,
      readFileSync(f.config, 'utf8').replace(
        '[hypervisor.qemu]\n',
        `[hypervisor.qemu]\ninitdata = ${JSON.stringify(initdata)}\n`,
      ),
    );
    // Only this sandbox's initdata dir is a full tmpfs (the shared parent is left alone).
    const dir = `${HOST_INITDATA_DIR}/${f.sandboxId}`;
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    smallTmpfs(t, dir, '64k');
    fill(dir);
    const r = await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
      f.options,
    );
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.log(formatLifecycleError(e).join('\n'));
    t.like(e, { kind: 'step', step: 'dirs' });
    t.regex(e.message, /initdata image .*ENOSPC/);
    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap(); // schema-validated
    t.is(state.vm?.qemu ?? null, null, 'no VM was started');
    t.deepEqual(
      state.dirs.filter((d) => d.path === dir).map((d) => d.phase),
      ['intent'],
    );
    execFileSync('umount', [dir]); // the disk frees up
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.false(existsSync(dir));
    t.deepEqual(left(f), []);
  },
);

test.serial(
  'disk full under the agent root: the copy fails with ENOSPC at copy, state valid, nothing left',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { configmapFiles: 8 }); // 2 MiB of configmap for a 1 MiB tmpfs
    smallTmpfs(t, f.agentRoot, '1m');
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => deleteSandbox(sb).then(() => undefined));
    const recorded = [sb.state.vm!.qemu!];
    const r = await addContainer(sb, { id: f.sandboxId, bundle: f.bundle });
    t.true(r.isErr());
    const e = r._unsafeUnwrapErr();
    t.log(formatLifecycleError(e).join('\n'));
    t.like(e, { kind: 'step', step: 'copy' });
    t.regex(e.message, /CopyFile|space|ENOSPC/i);
    const state = new StateStore(hostConst(f.stateRoot)).read(f.sandboxId)._unsafeUnwrap();
    t.is(state.containers[0]!.status, 'creating');
    t.is(watcherThreads(process.pid), 0, 'no watcher thread survived the failed copy');
    const deleted = await deleteSandbox(sb);
    t.true(deleted.isOk(), deleted.isErr() ? deleted.error.message : '');
    t.deepEqual(left(f, recorded), []);
  },
);
