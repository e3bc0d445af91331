// The bind target of a hot-plugged disk in a rootless VM dir (ts/lifecycle/rootless-vmm.ts). The
// VM dir belongs to the VMM user, who can plant links there: a planted link, FIFO or foreign file
// must give a named error with nothing mounted, nothing created or chowned outside, the victim
// untouched. Real files, real bind mounts (root). The state store of the grantDisk case is an
// in-memory stand-in: the subject here is the filesystem work, not the state file.
import { execFileSync } from 'node:child_process';
import {
  chownSync,
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ok } from 'neverthrow';
import type { ExecutionContext } from 'ava';
import { gated, needs } from '../harness/prereq.js';
import {
  bindOnto,
  grantDisk,
  openBindTarget,
  type BindTargetError,
} from '../../ts/lifecycle/rootless-vmm.js';
import type { StateRecorder } from '../../ts/lifecycle/state-recorder.js';
import { StateRecorder as Recorder } from '../../ts/lifecycle/state-recorder.js';
import type { SandboxState } from '../../ts/lifecycle/state-schema.js';
import type { StateStore } from '../../ts/lifecycle/state-store.js';
import type { ResourcePlan } from '../../ts/plan/plan.js';
import type { RootlessUser } from '../../ts/rootless/index.js';

const test = gated(needs.root()).serial;

/** A uid/gid no file here belongs to, standing in for the VMM user (no account needed). */
const VMM = { uid: 64999, gid: 64999 };
const ID = 'drive-1';

/** Mount points (field 5 of /proc/self/mountinfo, octal escapes decoded). */
function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) =>
      (l.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_m, o: string) =>
        String.fromCharCode(parseInt(o, 8)),
      ),
    );
}

interface Dirs {
  root: string;
  vm: string;
  disks: string;
  target: string;
  outside: string;
  victim: string;
  source: string;
}

function setup(t: ExecutionContext): Dirs {
  const root = mkdtempSync(path.join(tmpdir(), 'kata-bind-target-'));
  const vm = path.join(root, 'vm');
  const disks = path.join(vm, 'disks');
  const outside = path.join(root, 'outside');
  mkdirSync(vm, { mode: 0o750 });
  chownSync(vm, VMM.uid, VMM.gid);
  mkdirSync(outside, { mode: 0o755 });
  const victim = path.join(outside, 'victim');
  writeFileSync(victim, 'victim contents\n', { mode: 0o644 });
  const source = path.join(root, 'disk.img');
  writeFileSync(source, 'disk image\n', { mode: 0o600 });
  t.teardown(() => {
    for (const m of mountPoints()
      .filter((p) => p.startsWith(root))
      .reverse()) {
      execFileSync('umount', [m]);
    }
    rmSync(root, { recursive: true, force: true });
  });
  return { root, vm, disks, target: path.join(disks, ID), outside, victim, source };
}

/** As the VMM user would: `disks` made by it, owned by it. */
function userDisks(d: Dirs): void {
  mkdirSync(d.disks, { mode: 0o750 });
  chownSync(d.disks, VMM.uid, VMM.gid);
}

function assertRefused(
  t: ExecutionContext,
  d: Dirs,
  r: ReturnType<typeof openBindTarget>,
  kind: BindTargetError['kind'],
): void {
  t.true(r.isErr());
  if (r.isOk()) {
    closeSync(r.value);
    return;
  }
  t.is(r.error.kind, kind, r.error.message);
  t.deepEqual(
    mountPoints().filter((p) => p.startsWith(d.root)),
    [],
  );
  t.is(readFileSync(d.victim, 'utf8'), 'victim contents\n');
  const v = statSync(d.victim);
  t.is(v.uid, 0);
  t.is(v.mode & 0o7777, 0o644);
  t.deepEqual(readdirSync(d.outside), ['victim']);
  t.is(statSync(d.outside).uid, 0);
}

test('normal path: target made root-owned 0600, device bound onto it, unmounts', (t) => {
  const d = setup(t);
  const r = openBindTarget(d.vm, ID, VMM);
  if (r.isErr()) return t.fail(r.error.message);
  try {
    const bound = bindOnto(d.source, r.value);
    t.true(bound.isOk(), bound.isErr() ? bound.error.message : '');
  } finally {
    closeSync(r.value);
  }
  t.true(mountPoints().includes(d.target));
  t.is(readFileSync(d.target, 'utf8'), 'disk image\n');
  const disks = statSync(d.disks);
  t.is(disks.uid, VMM.uid);
  t.is(disks.gid, VMM.gid);
  execFileSync('umount', [d.target]);
  t.false(mountPoints().includes(d.target));
  const made = lstatSync(d.target);
  t.true(made.isFile());
  t.is(made.uid, 0);
  t.is(made.mode & 0o777, 0o600);
  t.is(made.size, 0);
});

test('a root-owned empty target left by an earlier attempt is reused', (t) => {
  const d = setup(t);
  userDisks(d);
  writeFileSync(d.target, '', { mode: 0o600 });
  const r = openBindTarget(d.vm, ID, VMM);
  if (r.isErr()) return t.fail(r.error.message);
  try {
    t.true(bindOnto(d.source, r.value).isOk());
  } finally {
    closeSync(r.value);
  }
  t.is(readFileSync(d.target, 'utf8'), 'disk image\n');
});

test('a symlink planted at the target, to a victim outside: refused, victim untouched', (t) => {
  const d = setup(t);
  userDisks(d);
  symlinkSync(d.victim, d.target);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'symlink');
});

test('a dangling symlink planted at the target: refused, nothing created outside', (t) => {
  const d = setup(t);
  userDisks(d);
  symlinkSync(path.join(d.outside, 'created-by-root'), d.target);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'symlink');
  t.false(existsSync(path.join(d.outside, 'created-by-root')));
});

test('`disks` planted as a symlink to a dir outside: refused, that dir not chowned', (t) => {
  const d = setup(t);
  symlinkSync(d.outside, d.disks);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'symlink');
});

test('the VM dir itself swapped for a symlink: refused', (t) => {
  const d = setup(t);
  rmSync(d.vm, { recursive: true });
  symlinkSync(d.outside, d.vm);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'symlink');
});

test('a FIFO planted at the target: refused without blocking', (t) => {
  const d = setup(t);
  userDisks(d);
  execFileSync('mkfifo', ['-m', '0600', d.target]);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'not-regular-file');
});

test('a target file owned by the VMM user: refused', (t) => {
  const d = setup(t);
  userDisks(d);
  writeFileSync(d.target, '', { mode: 0o600 });
  chownSync(d.target, VMM.uid, VMM.gid);
  assertRefused(t, d, openBindTarget(d.vm, ID, VMM), 'not-root-owned');
});

test('a root-owned file hard-linked in from elsewhere: refused', (t) => {
  const d = setup(t);
  userDisks(d);
  const elsewhere = path.join(d.outside, 'empty');
  writeFileSync(elsewhere, '', { mode: 0o600 });
  execFileSync('ln', [elsewhere, d.target]);
  const r = openBindTarget(d.vm, ID, VMM);
  t.true(r.isErr() && r.error.kind === 'hard-linked');
  t.deepEqual(
    mountPoints().filter((p) => p.startsWith(d.root)),
    [],
  );
});

test('a drive id that is not one file name: refused before anything is made', (t) => {
  const d = setup(t);
  assertRefused(t, d, openBindTarget(d.vm, '../outside/x', VMM), 'bad-drive-id');
  t.false(existsSync(d.disks));
});

test('grantDisk with a planted link: named hotplug error, nothing mounted', (t) => {
  const d = setup(t);
  userDisks(d);
  symlinkSync(d.victim, d.target);
  // In-memory stand-in for the state file (see the header).
  const store = { write: (s: SandboxState) => ok(s) } as unknown as StateStore;
  const state = { sandboxId: 'sb', mounts: [], grants: [] } as unknown as SandboxState;
  const rec: StateRecorder = new Recorder(store, state);
  const plan = { hostDirs: { vm: d.vm } } as unknown as ResourcePlan;
  const user = { name: 'kata-test', ...VMM } as unknown as RootlessUser;
  const r = grantDisk(rec, plan, user, { id: ID, pathOnHost: d.source }, 'c1');
  t.true(r.isErr());
  if (r.isErr()) {
    t.is(r.error.kind, 'step');
    t.regex(r.error.message, /bind target: .*a symlink or non-directory is in the way \(ELOOP\)/);
  }
  t.deepEqual(
    mountPoints().filter((p) => p.startsWith(d.root)),
    [],
  );
  t.is(readFileSync(d.victim, 'utf8'), 'victim contents\n');
  t.false(rec.state.mounts.some((m) => m.target === d.target));
  // The image was chowned (grant recorded first, for cleanup to give back); give it back here.
  chownSync(d.source, 0, 0);
});
