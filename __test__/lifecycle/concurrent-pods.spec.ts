// Ten pods created at once through the lifecycle's production path (createSandbox → addContainer
// → startContainer, TCG guests with 256 MiB, our agent as PID 1), all in one state root and one
// cgroup parent as a node runs them: every pod reaches running with its own state dir, QMP and
// agent sockets, QEMU process and sandbox cgroup (holding its own QEMU), its container prints
// its own line; then all ten are deleted at once and nothing is left. Boots one guest per pod,
// so run it under `flock /tmp/kata-vm.lock`.
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import {
  addContainer,
  kill,
  pumpOutput,
  startContainer,
  wait,
} from '../../ts/lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../../ts/lifecycle/errors.js';
import { isAlive, processesWithArg } from '../../ts/lifecycle/process-ref.js';
import { cleanup, createSandbox, deleteSandbox, type Sandbox } from '../../ts/lifecycle/sandbox.js';
import type { ProcessRef } from '../../ts/lifecycle/state-schema.js';
import { hierarchies, readIds, removeSubtree, uniqueSubtree } from '../harness/cgroup-subtree.js';
import { gated, needs } from '../harness/prereq.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const GUEST_DIR = path.join(repoRoot, 'build/guest');
const ROOTFS_IMAGE = path.join(repoRoot, 'build/rootfs/busybox.ext4');
const PODS = 10;
const KERNEL_PARAMS =
  'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';

const test = gated(
  needs.root(),
  needs.qemu(),
  needs.guest(),
  needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)'),
);

function writeConfig(dir: string): string {
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(
    file,
    [
      '[hypervisor.qemu]',
      'path = "/usr/bin/qemu-system-x86_64"',
      `kernel = "${GUEST_DIR}/vmlinux"`,
      `initrd = "${GUEST_DIR}/initramfs.cpio.gz"`,
      'machine_type = "q35"',
      `kernel_params = "${KERNEL_PARAMS}"`,
      'default_vcpus = 1',
      'default_maxvcpus = 1',
      'default_memory = 256',
      'pcie_root_port = 2',
      'shared_fs = "none"',
      'block_device_driver = "virtio-blk-pci"',
      '[agent.kata]',
      // Ten TCG guests on two cores: a CreateContainer took over runtime-rs's 30 s default once.
      'request_timeout_ms = 120000',
      '[runtime]',
      'sandbox_cgroup_only = true',
      '',
    ].join('\n'),
  );
  return file;
}

/** Pod `i`: a sandbox bundle whose container prints `up-<sid>` and sleeps, on its own rootfs copy. */
function writeBundle(dir: string, subtree: string, sid: string): string {
  const bundle = path.join(dir, sid);
  mkdirSync(bundle);
  const spec = JSON.parse(readFileSync(path.join(repoRoot, 'examples/bundle/config.json'), 'utf8'));
  spec.process.args = ['sh', '-c', `echo up-${sid}; exec sleep 600`];
  spec.linux.cgroupsPath = `/${subtree}/${sid}`;
  spec.hostname = sid;
  spec.annotations = {
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.kubernetes.cri.sandbox-id': sid,
  };
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  const image = path.join(dir, `${sid}-rootfs.ext4`);
  copyFileSync(ROOTFS_IMAGE, image);
  writeFileSync(
    path.join(bundle, 'rootfs-mounts.json'),
    JSON.stringify([{ type: 'ext4', source: image, options: ['loop', 'rw'] }]),
  );
  return bundle;
}

function unwrap<T>(r: {
  isErr(): boolean;
  _unsafeUnwrap(): T;
  _unsafeUnwrapErr(): LifecycleError;
}): T {
  if (r.isErr()) throw new Error(formatLifecycleError(r._unsafeUnwrapErr()).join('\n'));
  return r._unsafeUnwrap();
}

/** Resolves once `text` appears in what `push` received. */
function outputOf(): {
  push: (b: Uint8Array) => void;
  seen: (text: string, ms: number) => Promise<void>;
} {
  let text = '';
  const waiters: Array<() => void> = [];
  return {
    push: (b) => {
      text += Buffer.from(b).toString('utf8');
      for (const w of waiters.splice(0)) w();
    },
    seen: async (want, ms) => {
      const deadline = Date.now() + ms;
      while (!text.includes(want)) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`${want} not printed within ${ms} ms; output: ${text}`);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          waiters.push(() => (clearTimeout(timer), r()));
        });
      }
    },
  };
}

interface Running {
  readonly sb: Sandbox;
  readonly done: Promise<void>;
}

async function startPod(
  config: string,
  bundle: string,
  sid: string,
  stateRoot: string,
  made: Sandbox[],
): Promise<Running> {
  const sb = unwrap(
    await createSandbox(
      { sandboxId: sid, configPath: config, bundle },
      { stateRoot, accel: 'tcg', runtimePid: process.pid, bootTimeoutMs: 400_000 },
    ),
  );
  made.push(sb);
  unwrap(await addContainer(sb, { id: sid, bundle }));
  unwrap(await startContainer(sb, sid));
  const out = outputOf();
  const done = pumpOutput(sb, sid, out.push, () => undefined);
  await out.seen(`up-${sid}`, 120_000);
  return { sb, done };
}

/** What of the pods is still on the machine. */
function leftovers(stateRoot: string, subtree: string, recorded: readonly ProcessRef[]): string[] {
  const left: string[] = [];
  if (existsSync(stateRoot)) left.push(...readdirSync(stateRoot).map((d) => `state dir ${d}`));
  for (const h of hierarchies()) {
    const cg = path.join(h, subtree);
    if (!existsSync(cg)) continue;
    for (const d of readdirSync(cg, { withFileTypes: true }))
      if (d.isDirectory()) left.push(`cgroup ${path.join(cg, d.name)}`);
  }
  for (const ref of recorded) if (isAlive(ref)) left.push(`pid ${ref.pid}`);
  for (const ref of processesWithArg(stateRoot)) left.push(`process ${ref.pid} using ${stateRoot}`);
  return left;
}

function ownCgroupHoldsQemu(t: ExecutionContext, subtree: string, sb: Sandbox): void {
  const pid = sb.vm.vm.pid;
  const holding = hierarchies().filter((h) => {
    const procs = path.join(h, subtree, sb.id, 'cgroup.procs');
    return existsSync(procs) && readIds(procs).includes(pid);
  });
  t.true(holding.length > 0, `${sb.id}: QEMU ${pid} is in its own sandbox cgroup`);
}

test.serial(
  `${PODS} pods created at once all reach running, each with its own cgroup, dirs and sockets; nothing is left`,
  async (t) => {
    t.timeout(900_000);
    const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-concurrent-'));
    const stateRoot = path.join(dir, 'state');
    const subtree = uniqueSubtree();
    const made: Sandbox[] = [];
    const ids = Array.from({ length: PODS }, () => `pod-${randomBytes(4).toString('hex')}`);
    t.teardown(async () => {
      await Promise.all(made.map((sb) => deleteSandbox(sb)));
      await Promise.all(ids.map((sid) => cleanup(sid, { stateRoot })));
      removeSubtree(subtree);
      rmSync(dir, { recursive: true, force: true });
    });
    const config = writeConfig(dir);
    const bundles = ids.map((sid) => writeBundle(dir, subtree, sid));

    const t0 = performance.now();
    const settled = await Promise.allSettled(
      ids.map((sid, i) => startPod(config, bundles[i]!, sid, stateRoot, made)),
    );
    t.log(`${PODS} pods running after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    const failed = settled.flatMap((s, i) =>
      s.status === 'rejected' ? [`${ids[i]}: ${String(s.reason)}`] : [],
    );
    t.deepEqual(failed, [], 'every pod reached running');
    const pods = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));

    const distinct = (what: string, xs: readonly unknown[]) =>
      t.is(new Set(xs).size, PODS, `${what} are distinct`);
    distinct('state dirs', readdirSync(stateRoot));
    distinct(
      'QMP sockets',
      pods.map((p) => p.sb.state.vm!.qmpSocket),
    );
    distinct(
      'agent sockets',
      pods.map((p) => p.sb.vm.agentSocket),
    );
    distinct(
      'QEMU pids',
      pods.map((p) => p.sb.vm.vm.pid),
    );
    for (const { sb } of pods) {
      t.is(sb.state.status, 'ready', `${sb.id}: sandbox recorded ready`);
      t.is(
        sb.state.containers.find((c) => c.id === sb.id)?.status,
        'running',
        `${sb.id}: its container recorded running`,
      );
      t.true(sb.state.vm!.qmpSocket.startsWith(path.join(stateRoot, sb.id)));
      t.true(existsSync(sb.vm.agentSocket), `${sb.id}: agent socket exists`);
      ownCgroupHoldsQemu(t, subtree, sb);
    }
    const recorded = pods.map((p) => p.sb.state.vm!.qemu!);

    await Promise.all(
      pods.map(async ({ sb, done }) => {
        const exited = wait(sb, sb.id);
        unwrap(await kill(sb, sb.id, 9));
        await exited;
        await done;
        unwrap(await deleteSandbox(sb));
      }),
    );
    made.length = 0;
    t.deepEqual(leftovers(stateRoot, subtree, recorded), []);
  },
);
