// shared_fs = virtio-fs: the shared dir's rw/ro mounts, the container rootfs bound into it and
// seen through the read-only view virtiofsd exports, virtiofsd recorded and stopped; removal and
// cleanup unmount everything without touching the bundle's files (a recursive delete through a
// bind would remove them).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { addContainer, removeContainer } from '../../ts/lifecycle/container.js';
import { mountsUnder } from '../../ts/lifecycle/host-mounts.js';
import { isAlive } from '../../ts/lifecycle/process-ref.js';
import { cleanup, createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { fixture, leftovers, sharedSandboxDir } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

test.serial('virtio-fs: rw/ro shared dir, rootfs bind visible read-only, virtiofsd; delete unmounts all and keeps the bundle', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t, { sharedFs: 'virtio-fs' });
  const sb = (await createSandbox({ sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle }, f.options))._unsafeUnwrap();
  t.teardown(() => void deleteSandbox(sb));
  const virtiofsd = sb.state.vm!.virtiofsd!;
  t.true(isAlive(virtiofsd));
  const shared = sharedSandboxDir(f.sandboxId);
  t.deepEqual(mountsUnder(shared), [`${shared}/rw`, `${shared}/ro`]);
  (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
  const bind = sb.plan.containers[0]!.rootfs.sharedBind!;
  const seen = path.join(`${shared}/ro`, path.relative(`${shared}/rw`, bind.hostPath), 'marker');
  t.is(readFileSync(seen, 'utf8'), 'rootfs content\n', 'the rootfs bind propagates into the read-only view');
  t.true(sb.state.mounts.every((m) => m.phase === 'done'));
  (await removeContainer(sb, f.sandboxId))._unsafeUnwrap();
  t.false(mountsUnder(shared).includes(bind.hostPath));
  (await deleteSandbox(sb))._unsafeUnwrap();
  t.false(isAlive(virtiofsd));
  t.deepEqual(mountsUnder(shared), []);
  t.is(readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'), 'rootfs content\n', 'the bundle is untouched');
  t.deepEqual(leftovers(f, [virtiofsd]), []);
});

test.serial('virtio-fs: cleanup from another process unmounts before removing, whatever was mounted', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t, { sharedFs: 'virtio-fs' });
  const sb = (await createSandbox({ sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle }, f.options))._unsafeUnwrap();
  (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
  const virtiofsd = sb.state.vm!.virtiofsd!;
  const qemu = sb.state.vm!.qemu!;
  // As a fresh process would: the in-memory sandbox is abandoned, only the state file is used.
  sb.agent.close();
  (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
  t.is(readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'), 'rootfs content\n');
  t.false(existsSync(sharedSandboxDir(f.sandboxId)));
  t.deepEqual(leftovers(f, [virtiofsd, qemu]), []);
});
