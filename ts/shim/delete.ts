// `delete`: containerd runs it after every task and after it lost the shim. A sandbox the
// daemon still holds is released there (the daemon deletes it); otherwise it removes what a dead
// shim left for the id — the sandbox (VM, cgroups, user, dirs, state: the lifecycle's cleanup)
// when the id is a sandbox, and the rootfs the shim mounted — then prints a DeleteResponse with
// exit status 137 (128 + SIGKILL), as containerd's own shims do.
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { safeLine } from '../input/escape-text.js';
import { DeleteResponseSchema } from '../gen/containerd/task/v2/shim_pb.js';
import { StateStore, stateRoot } from '../lifecycle/state-store.js';
import { bundleAnnotations, daemonPaths, NOT_HELD, sandboxIdOf } from './address.js';
import { callDaemon } from './daemon-client.js';
import type { ShimFlags } from './flags.js';
import { sharedRootfsBinds, unmountRootfs } from './rootfs.js';

/** Runs `delete`; returns the exit code. */
export async function shimDelete(flags: ShimFlags): Promise<number> {
  const problems: string[] = [];
  // A bundle already removed is normal here; a hostile config.json is reported, and the id is
  // then taken as its own sandbox (delete still removes what it can).
  const annotations = bundleAnnotations(flags.bundle);
  if (annotations.isErr() && annotations.error.kind !== 'missing')
    problems.push(`${annotations.error.path}: ${annotations.error.what}`);
  const sandboxId = sandboxIdOf(flags.id, annotations.unwrapOr({}));
  // The shared-dir bind first: the sandbox cleanup removes that dir recursively.
  for (const target of [...sharedRootfsBinds(flags.id), path.join(flags.bundle, 'rootfs')]) {
    const unmounted = await unmountRootfs(target);
    if (unmounted.isErr()) problems.push(unmounted.error);
  }
  const root = stateRoot();
  // containerd runs delete when it lost the shim's connection (the front died): the daemon may
  // still hold the sandbox and takes it down itself. A cleanup here would kill the daemon as the
  // sandbox's recorded owner, and every other pod with it.
  // Once the daemon answered (or took the call and is still deleting: a timeout), the sandbox
  // is the daemon's to take down; a local cleanup then would race it and kill the daemon.
  let daemonHolds = false;
  if (sandboxId === flags.id && root.isOk() && existsSync(path.join(root.value, sandboxId))) {
    const released = await callDaemon(
      daemonPaths(root.value).daemonSocket,
      'Release',
      { sandboxId, namespace: flags.namespace },
      4_000,
    );
    daemonHolds =
      released.isOk() ||
      (!released.error.startsWith('cannot reach') && !released.error.includes(NOT_HELD));
    if (released.isErr() && daemonHolds) problems.push(released.error);
  }
  // containerd kills `delete` after 5 s: load the cleanup (slow to import) only when a sandbox
  // state is there to clean, and only the cleanup, not the whole lifecycle (half the load time).
  if (
    !daemonHolds &&
    sandboxId === flags.id &&
    root.isOk() &&
    existsSync(path.join(root.value, sandboxId))
  ) {
    const { cleanupSandbox } = await import('../lifecycle/cleanup.js');
    const cleaned = await cleanupSandbox(new StateStore(root.value), sandboxId);
    // A sandbox whose state is already gone (a clean exit) has nothing left to remove.
    if (cleaned.isErr() && cleaned.error.kind !== 'not-found') problems.push(cleaned.error.message);
  }
  for (const p of problems)
    process.stderr.write(`${safeLine(`kata-ts shim: delete ${flags.id}: ${p}`)}\n`);
  const response = create(DeleteResponseSchema, {
    exitStatus: 137,
    exitedAt: timestampFromDate(new Date()),
  });
  process.stdout.write(toBinary(DeleteResponseSchema, response));
  return problems.length > 0 ? 1 : 0;
}
