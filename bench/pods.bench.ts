// pods.start_10_concurrent: wall time for 10 pods created at once in one process (createSandbox →
// addContainer → startContainer through the lifecycle, TCG guests with 256 MiB, our agent) until
// every pod's first process has printed, against 10 × the same for one pod alone, measured in the
// same run. Ratio > 1 means the starts overlap. Boots 11 guests: run under
// `flock /tmp/kata-vm.lock`. Skipped without `make guest`.
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addContainer, kill, pumpOutput, startContainer, wait } from '../ts/lifecycle/container.js';
import { formatLifecycleError, type LifecycleError } from '../ts/lifecycle/errors.js';
import { cleanup, createSandbox, deleteSandbox, type Sandbox } from '../ts/lifecycle/sandbox.js';
import { scaling, type Metrics } from './metric.js';

const PODS = 10;
const root = fileURLToPath(new URL('..', import.meta.url));
const GUEST = path.join(root, 'build/guest');
const ROOTFS = path.join(root, 'build/rootfs/busybox.ext4');
const CGROUP_ROOT = '/sys/fs/cgroup';

function writeConfig(dir: string): string {
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(
    file,
    [
      '[hypervisor.qemu]',
      'path = "/usr/bin/qemu-system-x86_64"',
      `kernel = "${GUEST}/vmlinux"`,
      `initrd = "${GUEST}/initramfs.cpio.gz"`,
      'machine_type = "q35"',
      'kernel_params = "console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check"',
      'default_vcpus = 1',
      'default_maxvcpus = 1',
      'default_memory = 256',
      'pcie_root_port = 2',
      'shared_fs = "none"',
      'block_device_driver = "virtio-blk-pci"',
      '[agent.kata]',
      '[runtime]',
      'sandbox_cgroup_only = true',
      '',
    ].join('\n'),
  );
  return file;
}

function writeBundle(dir: string, subtree: string, sid: string): string {
  const bundle = path.join(dir, sid);
  mkdirSync(bundle);
  const spec = JSON.parse(readFileSync(path.join(root, 'examples/bundle/config.json'), 'utf8'));
  spec.process.args = ['sh', '-c', `echo up-${sid}; exec sleep 600`];
  spec.linux.cgroupsPath = `/${subtree}/${sid}`;
  spec.annotations = {
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.kubernetes.cri.sandbox-id': sid,
  };
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  const image = path.join(dir, `${sid}.ext4`);
  copyFileSync(ROOTFS, image);
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

/** One pod from createSandbox until its first process printed; the sandbox goes to `made`. */
async function startPod(
  dir: string,
  config: string,
  subtree: string,
  sid: string,
  made: Sandbox[],
): Promise<void> {
  const bundle = writeBundle(dir, subtree, sid);
  const sb = unwrap(
    await createSandbox(
      { sandboxId: sid, configPath: config, bundle },
      { stateRoot: path.join(dir, 'state'), accel: 'tcg', bootTimeoutMs: 600_000 },
    ),
  );
  made.push(sb);
  unwrap(await addContainer(sb, { id: sid, bundle }));
  unwrap(await startContainer(sb, sid));
  await new Promise<void>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${sid}: no output in 300 s`)), 300_000);
    void pumpOutput(
      sb,
      sid,
      (b) => {
        text += Buffer.from(b).toString('utf8');
        if (text.includes(`up-${sid}`)) {
          clearTimeout(timer);
          resolve();
        }
      },
      () => undefined,
    );
  });
}

async function stopAll(made: Sandbox[]): Promise<void> {
  await Promise.all(
    made.map(async (sb) => {
      // A pod whose container never started has no process to wait for: bounded, then delete.
      const exited = wait(sb, sb.id);
      if ((await kill(sb, sb.id, 9)).isOk())
        await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
      await deleteSandbox(sb);
    }),
  );
}

/** Wall ms for `n` pods started at once; everything is removed afterwards. */
async function startPods(n: number): Promise<number> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-pods-'));
  const subtree = `kata-ts-bench-${randomBytes(5).toString('hex')}`;
  const made: Sandbox[] = [];
  const ids = Array.from({ length: n }, () => `pod-${randomBytes(4).toString('hex')}`);
  try {
    const config = writeConfig(dir);
    const t0 = performance.now();
    await Promise.all(ids.map((sid) => startPod(dir, config, subtree, sid, made)));
    return performance.now() - t0;
  } finally {
    await stopAll(made);
    await Promise.all(ids.map((sid) => cleanup(sid, { stateRoot: path.join(dir, 'state') })));
    for (const h of readdirSync(CGROUP_ROOT)) {
      try {
        rmdirSync(path.join(CGROUP_ROOT, h, subtree));
      } catch {
        // not there (or not a hierarchy)
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<Metrics> {
  if (!existsSync(path.join(GUEST, 'vmlinux')) || !existsSync(ROOTFS)) {
    process.stderr.write('bench: pods: guest not built (make guest), skipped\n');
    return {};
  }
  const load = loadavg()[0]!.toFixed(1);
  const one = await startPods(1);
  const ten = await startPods(PODS);
  const loadAfter = loadavg()[0]!.toFixed(1);
  return {
    'pods.start_10_concurrent': scaling(
      Math.round(ten),
      Math.round(one * PODS),
      'ms',
      `${PODS} pods created at once in one process (createSandbox → addContainer → startContainer → first output; TCG, 1 vCPU, 256 MiB each) vs ${PODS} × one pod alone (${Math.round(one)} ms) in the same run; 2 host cores, so ${PODS} TCG boots are CPU-bound and overlap only the waits; load average ${load} before, ${loadAfter} after`,
    ),
  };
}
