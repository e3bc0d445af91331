// What a sandbox makes on the way to its own dirs and cgroups, it removes again: the parent
// cgroup of a cgroupsPath (`/<subtree>` of `/<subtree>/<sid>`, in every v1 hierarchy) and the
// empty /run/kata-containers/shared/{sandboxes,initdata} parents, after delete and after a
// cleanup from a fresh process. Never a parent someone else made, nor one still in use. Real
// cgroupfs, a real (paused) QEMU and the host-side agent (lifecycle-harness).
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { createSandbox, cleanup, deleteSandbox } from '../../ts/lifecycle/sandbox.js';
import { StateStore } from '../../ts/lifecycle/state-store.js';
import { hostConst } from '../../ts/paths.js';
import { hierarchies } from '../harness/cgroup-subtree.js';
import { gated, needs } from '../harness/prereq.js';
import { fixture, leftovers, type Fixture } from './lifecycle-harness.js';

const test = gated(needs.root(), needs.qemu(), needs.guest());

const SHARED = '/run/kata-containers/shared';
const PARENTS = ['/run/kata-containers', SHARED, `${SHARED}/sandboxes`, `${SHARED}/initdata`];

/** The fixture's cgroup parent (`<hierarchy>/<subtree>`) in every v1 hierarchy (the cgroup2 mount is not one). */
const cgroupParents = (f: Fixture) =>
  hierarchies()
    .filter((h) => !existsSync(path.join(h, 'cgroup.controllers')))
    .map((h) => path.join(h, f.subtree));

/** Makes the parents as another tool would (a cpuset cgroup needs cpus and mems to take tasks). */
function makeParents(f: Fixture): void {
  for (const p of cgroupParents(f)) {
    mkdirSync(p);
    if (path.basename(path.dirname(p)) !== 'cpuset') continue;
    for (const file of ['cpuset.cpus', 'cpuset.mems'])
      writeFileSync(
        path.join(p, file),
        readFileSync(path.join(path.dirname(p), file), 'utf8').trim(),
      );
  }
}

/**
 * Removes empty leftovers of earlier runs (rmdir never removes a dir in use), so this run sees
 * which parents a sandbox makes. Returns those that still exist: someone else's, kept.
 */
function clearEmptyParents(): Set<string> {
  for (const p of [...PARENTS].reverse()) {
    try {
      rmdirSync(p);
    } catch {
      // not empty or not there
    }
  }
  return new Set(PARENTS.filter((p) => existsSync(p)));
}

/** Each parent that was not there before is gone again, unless another sandbox is using it now. */
function parentsLeft(before: Set<string>): string[] {
  return PARENTS.filter((p) => !before.has(p) && existsSync(p) && readdirSync(p).length === 0);
}

function withInitdata(f: Fixture): void {
  const initdata = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';
  writeFileSync(
    f.config,
    readFileSync(f.config, 'utf8').replace(
      '[hypervisor.qemu]\n',
      `[hypervisor.qemu]\ninitdata = ${JSON.stringify(initdata)}\n`,
    ),
  );
}

test.serial(
  'virtio-fs + initdata: delete removes the cgroup parent in every hierarchy and the empty shared parents it made',
  async (t) => {
    t.timeout(120_000);
    const f = await fixture(t, { sharedFs: 'virtio-fs' });
    withInitdata(f);
    const before = clearEmptyParents();
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(sb));
    const state = sb.state;
    const record = state.cgroups!.record.sandbox;
    t.is(record.driver, 'cgroupfs');
    t.deepEqual(
      record.driver === 'cgroupfs' ? record.createdParents : [],
      cgroupParents(f),
      'the parents create made are recorded',
    );
    t.true(cgroupParents(f).every((p) => existsSync(p)));
    // Other sandboxes (tests running in parallel) may make some of them first: then they are not ours.
    const recordedIfEmpty = state.dirs.filter((d) => d.ifEmpty === true).map((d) => d.path);
    t.true(recordedIfEmpty.length > 0, 'the shared parents this sandbox made are recorded');
    t.deepEqual(
      recordedIfEmpty.filter((p) => !PARENTS.includes(p) || before.has(p)),
      [],
      'only parents that were missing',
    );
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.deepEqual(
      cgroupParents(f).filter((p) => existsSync(p)),
      [],
      'no cgroup parent left',
    );
    t.deepEqual(parentsLeft(before), [], 'no empty shared parent left');
    t.deepEqual(leftovers(f), []);
  },
);

test.serial('cleanup from a fresh process removes the parents too', async (t) => {
  t.timeout(120_000);
  const f = await fixture(t);
  withInitdata(f);
  const before = clearEmptyParents();
  const sb = (
    await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
      f.options,
    )
  )._unsafeUnwrap();
  sb.agent.close();
  (await cleanup(f.sandboxId, { stateRoot: f.stateRoot }))._unsafeUnwrap();
  t.deepEqual(
    cgroupParents(f).filter((p) => existsSync(p)),
    [],
  );
  t.deepEqual(parentsLeft(before), []);
  t.deepEqual(leftovers(f, [sb.state.vm!.qemu!]), []);
});

test.serial(
  'a cgroup parent that existed before, or is still in use by another sandbox, stays',
  async (t) => {
    t.timeout(180_000);
    const f = await fixture(t);
    makeParents(f);
    const sb = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const rec = sb.state.cgroups!.record.sandbox;
    t.is(
      rec.driver === 'cgroupfs' ? rec.createdParents : undefined,
      undefined,
      'nothing made, nothing recorded',
    );
    (await deleteSandbox(sb))._unsafeUnwrap();
    t.true(
      cgroupParents(f).every((p) => existsSync(p)),
      'not ours: kept',
    );
    for (const p of cgroupParents(f)) rmdirSync(p);

    // Two sandboxes below one parent: the first (which made it) goes first, the parent stays.
    const g = await fixture(t);
    const spec = (b: string) => path.join(b, 'config.json');
    const second = JSON.parse(readFileSync(spec(g.bundle), 'utf8'));
    second.linux.cgroupsPath = `/${f.subtree}/${g.sandboxId}`;
    writeFileSync(spec(g.bundle), JSON.stringify(second));
    const a = (
      await createSandbox(
        { sandboxId: f.sandboxId, configPath: f.config, bundle: f.bundle },
        f.options,
      )
    )._unsafeUnwrap();
    const b = (
      await createSandbox(
        { sandboxId: g.sandboxId, configPath: g.config, bundle: g.bundle },
        g.options,
      )
    )._unsafeUnwrap();
    t.teardown(() => void deleteSandbox(b));
    (await deleteSandbox(a))._unsafeUnwrap();
    t.true(
      cgroupParents(f).every((p) => existsSync(p)),
      'in use by the second sandbox',
    );
    const bState = new StateStore(hostConst(g.stateRoot)).read(g.sandboxId)._unsafeUnwrap();
    t.true(bState.status === 'ready');
    (await deleteSandbox(b))._unsafeUnwrap();
    // The second sandbox did not make the parent, so it leaves it (the fixture's teardown removes it).
    t.true(cgroupParents(f).every((p) => existsSync(p)));
  },
);
