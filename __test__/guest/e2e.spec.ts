// End to end through the lifecycle's production path, in the guest booted under TCG, once per
// agent image (forEachGuestImage: our agent as PID 1, upstream kata-agent): createSandbox (plan → cgroups → QEMU → agent → CreateSandbox with the shm
// storage), addContainer (rootfs image hot-plugged as virtio-blk, then as virtio-scsi; the
// kubelet configmap copied by the native copy engine and live-synced by its watcher),
// startContainer, output streamed, wait. Inside the container: the configmap's first value, the
// value after the kubelet's atomic `..data` swap on the host, a directory created on the host
// and then a file written into it. A second container, added by re-planning the sandbox, reads
// /dev/shm's planned size. Then remove both, deleteSandbox, and nothing is left on the host.
// A missing image or rootfs is a loud skip (with CI=true, a failure of the promised suite).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { BlockDriver } from '../../ts/config/kata-config.js';
import {
  addContainer,
  pumpOutput,
  removeContainer,
  startContainer,
  wait,
} from '../../ts/lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../../ts/lifecycle/errors.js';
import { createSandbox, deleteSandbox, type Sandbox } from '../../ts/lifecycle/sandbox.js';
import { logTail } from '../../ts/qemu/vm.js';
import { needs } from '../harness/prereq.js';
import {
  leftovers,
  podFixture,
  ROOTFS_IMAGE,
  SHM_SIZE_MIB,
  type PodFixture,
} from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';

/** Budget for the container to see one host change (debounce 100 ms; TCG on a loaded machine). */
const CHANGE_TIMEOUT_MS = 60_000;

/** The sandbox's container: prints the configmap as it changes, polling (busybox sh). */
const SANDBOX_SCRIPT = [
  'wait_for() { i=0; while ! eval "$1" && [ $i -lt 900 ]; do sleep 0.1; i=$((i + 1)); done; }',
  'echo "key=$(cat /etc/config/key)"',
  `wait_for '[ "$(cat /etc/config/key)" != v1 ]'`,
  'echo "key-updated=$(cat /etc/config/key)"',
  `wait_for '[ -d /etc/config/newdir ]'`,
  'echo "newdir=present"',
  `wait_for '[ -s /etc/config/newdir/file ]'`,
  'echo "newdir-file=$(cat /etc/config/newdir/file)"',
].join('\n');

/** A container's stdout as it arrives, with a bounded wait for a line. */
class Output {
  text = '';
  #waiters: Array<() => void> = [];

  readonly push = (b: Uint8Array): void => {
    this.text += Buffer.from(b).toString('utf8');
    for (const w of this.#waiters.splice(0)) w();
  };

  /** The first capture group of `re` once the output matches it. */
  async line(re: RegExp, what: string): Promise<string> {
    const deadline = Date.now() + CHANGE_TIMEOUT_MS;
    for (;;) {
      const m = re.exec(this.text);
      if (m !== null) return m[1] ?? m[0];
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `${what}: not seen within ${CHANGE_TIMEOUT_MS} ms; output so far:\n${this.text}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }
}

function ok<T>(
  r: { isErr(): boolean; _unsafeUnwrap(): T; _unsafeUnwrapErr(): LifecycleError },
  f: PodFixture,
): T {
  if (r.isErr())
    throw new Error(
      `${formatLifecycleError(r._unsafeUnwrapErr()).join('\n')}\nconsole:\n${logTail(f.consoleLog, 4000)}`,
    );
  return r._unsafeUnwrap();
}

/** Starts a created container and collects its stdout until it ends. */
function started(sb: Sandbox, id: string): { out: Output; done: Promise<void> } {
  const out = new Output();
  const err = new Output();
  return { out, done: pumpOutput(sb, id, out.push, err.push) };
}

async function pod(t: ExecutionContext, driver: BlockDriver, img: NamedGuestImage): Promise<void> {
  const f = podFixture(driver, ['sh', '-c', SANDBOX_SCRIPT], ['df', '-k', '/dev/shm'], img.image);
  t.teardown(() => f.cleanup());
  const sb = ok(
    await createSandbox(
      { sandboxId: f.sandboxId, configPath: f.config, bundle: f.sandboxBundle },
      f.options,
    ),
    f,
  );
  const recorded = [sb.state.vm!.qemu!];
  let deleted = false;
  t.teardown(async () => {
    if (!deleted) await deleteSandbox(sb);
  });
  t.log(
    `${driver}: booted and CreateSandbox in ${((sb.timings['boot'] ?? 0) + (sb.timings['createSandbox'] ?? 0)).toFixed(0)} ms`,
  );
  t.is(sb.plan.shmSizeBytes, SHM_SIZE_MIB << 20);
  const [copy] = sb.plan.containers[0]!.copies;
  t.like(copy, { kind: 'dir', watched: true }, 'the configmap is a watched copy step');

  ok(await addContainer(sb, { id: f.sandboxId, bundle: f.sandboxBundle }), f);
  t.deepEqual(sb.syncs?.sources(), [copy!.syncKey], 'one live sync, keyed as planned');
  t.deepEqual(
    sb.state.watchers.map((w) => [w.guestPath, w.phase]),
    [[copy!.guestPath, 'done']],
  );
  ok(await startContainer(sb, f.sandboxId), f);
  const { out, done } = started(sb, f.sandboxId);
  t.is(await out.line(/^key=(.*)$/m, 'first configmap value'), 'v1');

  f.updateConfigmap('v2');
  t.is(
    await out.line(/^key-updated=(.*)$/m, 'value after the ..data swap'),
    'v2',
    'the kubelet update reached the container',
  );

  mkdirSync(path.join(f.configmap, 'newdir'));
  await out.line(/^newdir=(present)$/m, 'directory created on the host');
  writeFileSync(path.join(f.configmap, 'newdir', 'file'), 'written after the directory\n');
  t.is(
    await out.line(/^newdir-file=(.*)$/m, 'file written into the new directory'),
    'written after the directory',
  );
  t.is(ok(await wait(sb, f.sandboxId), f), 0);
  await done;

  const app = ok(await addContainer(sb, { id: f.appId, bundle: f.appBundle }), f);
  t.is(app.id, f.appId);
  ok(await startContainer(sb, f.appId), f);
  const df = started(sb, f.appId);
  t.is(ok(await wait(sb, f.appId), f), 0);
  await df.done;
  // busybox `df -k`: Filesystem 1K-blocks Used Available Use% Mounted on
  const row = df.out.text.split('\n').find((l) => /\s\/dev\/shm$/.test(l));
  t.truthy(row, `df output: ${df.out.text}`);
  const kib = Number(row!.trim().split(/\s+/)[1]);
  // kata-agent 4.1.0 ignores `size=` of the sandbox shm storage (README "Guest images").
  if (img.name === 'ours') t.is(kib, SHM_SIZE_MIB * 1024, 'planned shm size in 1K blocks');
  else t.true(kib > SHM_SIZE_MIB * 1024, `kata-agent: default-size shm tmpfs (${kib} KiB)`);

  for (const id of [f.appId, f.sandboxId]) ok(await removeContainer(sb, id), f);
  t.deepEqual(sb.syncs?.sources(), [], 'the last release stopped the sync');
  ok(await deleteSandbox(sb), f);
  deleted = true;
  t.deepEqual(leftovers(f, recorded), []);
}

for (const driver of ['virtio-blk-pci', 'virtio-scsi'] as const)
  forEachGuestImage(
    `${driver}: configmap copied, live-updated (..data swap, new directory) and read in the container; planned /dev/shm size; nothing left`,
    (t, img) => pod(t, driver, img),
    {
      timeout: 300_000,
      needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')],
    },
  );
