// `cleanup <sid>`: undoes everything a sandbox's state records, newest first, from any process
// and after any crash. Idempotent: each entry is undone whether its phase is `intent` or `done`
// (an intent may or may not have happened), what is already gone counts as undone, and the state
// is rewritten after each step so an interrupted cleanup resumes where it stopped.
import { readFileSync, rmdirSync, rmSync } from 'node:fs';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { deleteSandboxCgroups } from '../apply/cgroups.js';
import { teardownRootlessUser } from '../rootless/index.js';
import { crashPoint } from './crash-point.js';
import { restoreGrants } from './rootless-vmm.js';
import { mountsUnder, unmountAll } from './host-mounts.js';
import { stepError, type LifecycleError } from './errors.js';
import { isAlive, killRecorded, processesWithArg } from './process-ref.js';
import type { SandboxState } from './state-schema.js';
import type { StateStore } from './state-store.js';

export interface CleanupReport {
  readonly sandboxId: string;
  /** What was undone, in order (`killed qemu pid 123`, `deleted cgroups`, …). */
  readonly actions: readonly string[];
}

/** The uid of `name` from /etc/passwd, for a user recorded before its runtime dir was. */
function uidOf(name: string): number | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === name);
  const uid = line?.split(':')[2];
  return uid === undefined ? undefined : Number(uid);
}

/** rmdir: true when removed; false when gone already or in use (not empty, a mount point). */
function removeIfEmpty(dir: string): Result<boolean, string> {
  try {
    rmdirSync(dir);
    return ok(true);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EBUSY')
      return ok(false);
    return err(`rmdir ${dir}: ${(e as Error).message}`);
  }
}

async function stopProcesses(s: SandboxState, actions: string[]): Promise<string[]> {
  const failures: string[] = [];
  // The owner holds the agent connection and the watcher threads; a live owner other than us is
  // stopped so no watcher outlives the sandbox.
  if (s.owner !== null && s.owner.pid !== process.pid && isAlive(s.owner)) {
    if (await killRecorded(s.owner)) actions.push(`killed owner pid ${s.owner.pid}`);
    else failures.push(`owner pid ${s.owner.pid} did not exit`);
  }
  if (s.vm === null) return failures;
  const recorded = [s.vm.qemu, s.vm.virtiofsd].filter((r) => r !== null);
  // A crash between spawn and the state write leaves an unrecorded pid: find it by its socket.
  const found = [s.vm.qmpSocket, s.vm.virtiofsSocket].flatMap((sock) => processesWithArg(sock));
  for (const ref of [...recorded, ...found]) {
    if (!isAlive(ref)) continue;
    if (await killRecorded(ref)) actions.push(`killed pid ${ref.pid}`);
    else failures.push(`pid ${ref.pid} did not exit`);
  }
  for (const sock of [s.vm.qmpSocket, s.vm.agentSocket, s.vm.virtiofsSocket])
    rmSync(sock, { force: true });
  return failures;
}

/** Undoes the sandbox's recorded resources and removes its state. */
export function cleanupSandbox(
  store: StateStore,
  sandboxId: string,
): ResultAsync<CleanupReport, LifecycleError> {
  const run = async (): Promise<CleanupReport> => {
    const read = store.read(sandboxId);
    if (read.isErr()) {
      if (read.error.kind === 'not-found') return { sandboxId, actions: [] };
      throw read.error;
    }
    let s: SandboxState = { ...read.value, status: 'deleting' };
    const save = () => {
      const w = store.write(s);
      if (w.isErr()) throw w.error;
    };
    save();
    const actions: string[] = [];
    const fail = (what: string) => stepError(sandboxId, 'cleanup', what);

    const stuck = await stopProcesses(s, actions);
    if (stuck.length > 0) throw fail(stuck.join('; '));
    s = {
      ...s,
      vm: s.vm && { ...s.vm, phase: 'removed', qemu: null, virtiofsd: null },
      // Hot-plugged devices and watchers lived in the VM and the owner process, both gone now.
      devices: s.devices.map((d) => ({ ...d, phase: 'removed' as const })),
      watchers: s.watchers.map((w) => ({ ...w, phase: 'removed' as const })),
    };
    save();
    crashPoint('cleanup');

    for (const m of [...s.mounts].reverse()) {
      if (m.phase === 'removed') continue;
      if (!unmountAll(m.target)) throw fail(`cannot unmount ${m.target}`);
      actions.push(`unmounted ${m.target}`);
    }
    s = { ...s, mounts: s.mounts.map((m) => ({ ...m, phase: 'removed' as const })) };
    save();

    // Files handed to a rootless VMM user go back to their owners (the binds are gone now).
    if (s.grants !== undefined && s.grants.some((g) => g.phase !== 'removed')) {
      const { restored, failed } = restoreGrants(s.grants);
      if (failed.length > 0) throw fail(failed.join('; '));
      actions.push(...restored.map((p) => `gave back ${p}`));
      s = { ...s, grants: s.grants.map((g) => ({ ...g, phase: 'removed' as const })) };
      save();
    }

    if (s.cgroups !== null && s.cgroups.phase !== 'removed') {
      const deleted = await deleteSandboxCgroups(s.cgroups.record, s.cgroups.host);
      if (deleted.isErr()) throw fail(deleted.error.message);
      actions.push('deleted cgroups');
      s = { ...s, cgroups: { ...s.cgroups, phase: 'removed' } };
      save();
    }

    const user = s.rootlessUser;
    if (user !== null && user.phase !== 'removed') {
      const uid = user.runtimeDir === '' ? uidOf(user.name) : undefined;
      const runtimeDir =
        user.runtimeDir !== ''
          ? user.runtimeDir
          : uid !== undefined
            ? `/run/user/${uid}`
            : undefined;
      const torn = teardownRootlessUser(
        runtimeDir === undefined ? { name: user.name } : { name: user.name, runtimeDir },
      );
      if (torn.isErr()) throw fail(torn.error.message);
      actions.push(`removed user ${user.name}`);
      s = { ...s, rootlessUser: { ...user, phase: 'removed' } };
      save();
    }

    for (const d of [...s.dirs].reverse()) {
      if (d.phase === 'removed') continue;
      if (d.ifEmpty === true) {
        // A parent we created, maybe shared by now: only while empty, never recursively.
        const removed = removeIfEmpty(d.path);
        if (removed.isErr()) throw fail(removed.error);
        if (removed.value) actions.push(`removed empty ${d.path}`);
        continue;
      }
      // Never recurse into a mount: that would delete the mounted source's files.
      const busy = mountsUnder(d.path);
      if (busy.length > 0)
        throw fail(`refusing to remove ${d.path}: still mounted below it: ${busy.join(', ')}`);
      rmSync(d.path, { recursive: true, force: true });
      actions.push(`removed ${d.path}`);
    }
    s = { ...s, dirs: s.dirs.map((d) => ({ ...d, phase: 'removed' as const })) };
    save();
    const removed = store.remove(sandboxId);
    if (removed.isErr()) throw removed.error;
    return { sandboxId, actions };
  };
  return ResultAsync.fromPromise(run(), (e) =>
    typeof e === 'object' && e !== null && 'kind' in e
      ? (e as LifecycleError)
      : stepError(sandboxId, 'cleanup', String(e)),
  );
}
