// shared_fs = virtio-fs: the shared dir's rw/ro mounts, the container rootfs bound into it and
// seen through the read-only view virtiofsd exports, virtiofsd recorded and stopped; removal and
// cleanup unmount everything without touching the bundle's files (a recursive delete through a
// bind would remove them).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { addContainer, removeContainer } from '../../ts/lifecycle/container.js';
import { mountsUnder } from '../../ts/lifecycle/host-mounts.js';
import { isAlive } from '../../ts/lifecycle/process-ref.js';
import { cleanup, createSandbox, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { fixture, leftovers, sharedSandboxDir } from './lifecycle-harness.js';
import { gated, needs } from '../harness/prereq.js';

/** Real ava skips, with the reason, where this cannot run. */
const test = gated(needs.root(), needs.qemu(), needs.guest());

test.serial(
  'virtio-fs: rw/ro shared dir, rootfs bind visible read-only, virtiofsd; delete unmounts all and keeps the bundle',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    const virtiofsd = sb.state.vm!.virtiofsd!;
    t.true(isAlive(virtiofsd));
    const shared = sharedSandboxDir(f.sandboxId);
    t.deepEqual(mountsUnder(shared), [`${shared}/rw`, `${shared}/ro`]);
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const bind = sb.plan.containers[0]!.rootfs.sharedBind!;
    const seen = path.join(`${shared}/ro`, path.relative(`${shared}/rw`, bind.hostPath), 'marker');
    t.is(
      readFileSync(seen, 'utf8'),
      'rootfs content\n',
      'the rootfs bind propagates into the read-only view',
    );
    // Every mount done; the read-only volumes' stage binds done and gone again.
    t.true(sb.state.mounts.every((m) => m.phase !== 'intent'));
    (await removeContainer(sb, f.sandboxId))._unsafeUnwrap();
    t.false(mountsUnder(shared).includes(bind.hostPath));
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.false(isAlive(virtiofsd));
    t.deepEqual(mountsUnder(shared), []);
    t.is(
      readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'),
      'rootfs content\n',
      'the bundle is untouched',
    );
    t.deepEqual(leftovers(f, [virtiofsd]), []);
  },
);

test.serial(
  'virtio-fs: cleanup from another process unmounts before removing, whatever was mounted',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const virtiofsd = sb.state.vm!.virtiofsd!;
    const qemu = sb.state.vm!.qemu!;
    // As a fresh process would: the in-memory sandbox is abandoned, only the state file is used.
    sb.agent.close();
    (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
    t.is(readFileSync(path.join(f.bundle, 'rootfs', 'marker'), 'utf8'), 'rootfs content\n');
    t.false(existsSync(sharedSandboxDir(f.sandboxId)));
    t.deepEqual(leftovers(f, [virtiofsd, qemu]), []);
  },
);

/** Adds bind volumes to the fixture's bundle: `/ro-data` read-only and `/rw-data` read-write. */
function addBindVolumes(f: { dir: string; bundle: string }): {
  roSource: string;
  rwSource: string;
} {
  const roSource = path.join(f.dir, 'ro-source');
  const rwSource = path.join(f.dir, 'rw-source');
  for (const d of [roSource, rwSource]) {
    mkdirSync(d);
    writeFileSync(path.join(d, 'kept'), 'host data\n');
  }
  const specFile = path.join(f.bundle, 'config.json');
  const spec = JSON.parse(readFileSync(specFile, 'utf8'));
  spec.mounts.push({
    destination: '/ro-data',
    type: 'bind',
    source: roSource,
    options: ['rbind', 'ro'],
  });
  spec.mounts.push({
    destination: '/rw-data',
    type: 'bind',
    source: rwSource,
    options: ['rbind', 'rw'],
  });
  writeFileSync(specFile, JSON.stringify(spec));
  return { roSource, rwSource };
}

/** The errno a write at `file` fails with, or null when it succeeds. */
function writeErrno(file: string): string | null {
  try {
    writeFileSync(file, 'written through the share\n');
    return null;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'unknown';
  }
}

/** Mount options of the mount point `target` (mountinfo field 6). */
function mountOptions(target: string): string[] {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4] === target)
    .pop();
  return (line?.split(' ')[5] ?? '').split(',');
}

test.serial(
  'virtio-fs: a read-only volume is read-only in the exported ro tree too (EROFS, host source unchanged); a rw one stays writable',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    const { roSource, rwSource } = addBindVolumes(f);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    (await addContainer(sb, { id: f.sandboxId, bundle: f.bundle }))._unsafeUnwrap();
    const binds = sb.plan.containers[0]!.sharedFsBinds;
    const ro = binds.find((b) => b.hostSource === roSource)!;
    const rw = binds.find((b) => b.hostSource === rwSource)!;
    t.truthy(ro, 'the ro volume is a shared-fs bind');
    t.truthy(rw, 'the rw volume is a shared-fs bind');
    // What virtiofsd exports: <sandbox>/ro/passthrough/…, the propagated copy of the rw-tree bind.
    t.true(ro.hostReadOnlyPath.startsWith(`${sharedSandboxDir(f.sandboxId)}/ro/`));
    t.true(mountOptions(ro.hostReadOnlyPath).includes('ro'), `mountinfo of ${ro.hostReadOnlyPath}`);
    t.is(
      writeErrno(path.join(ro.hostReadOnlyPath, 'kept')),
      'EROFS',
      'overwrite through the exported share',
    );
    t.is(
      writeErrno(path.join(ro.hostReadOnlyPath, 'new')),
      'EROFS',
      'create through the exported share',
    );
    t.is(writeErrno(path.join(ro.hostPath, 'kept')), 'EROFS', 'and through the rw tree');
    t.is(readFileSync(path.join(roSource, 'kept'), 'utf8'), 'host data\n');
    t.false(existsSync(path.join(roSource, 'new')));
    // A rw volume must stay writable where the guest reaches it.
    t.is(writeErrno(path.join(rw.hostReadOnlyPath, 'new')), null);
    t.is(readFileSync(path.join(rwSource, 'new'), 'utf8'), 'written through the share\n');
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.deepEqual(mountsUnder(sharedSandboxDir(f.sandboxId)), []);
    t.is(
      readFileSync(path.join(roSource, 'kept'), 'utf8'),
      'host data\n',
      'the source is untouched by teardown',
    );
    t.deepEqual(leftovers(f), []);
  },
);
