// Host side of the guest end-to-end test: a pod as a runtime would hand it to the lifecycle, on
// real host paths — a Kata config for the built guest (TCG, shared_fs = none, the given block
// driver), two OCI bundles (`rootfs-mounts.json`: a copy of build/rootfs/busybox.ext4 each, as a
// blockfile `loop` mount), a kubelet-style configmap directory (`..data` symlinks) bound at
// /etc/config, a host tmpfs of a known size as /dev/shm's source, a unique cgroup subtree — and
// the kubelet's atomic `..data` swap to update the configmap. `cleanup()` runs the lifecycle's
// cleanup, unmounts and removes everything.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BlockDriver } from '../../ts/config/kata-config.js';
import type { GuestImage } from '../../ts/guest/guest-shell.js';
import { cleanup, type SandboxOptions } from '../../ts/lifecycle/sandbox.js';
import { isAlive, processesWithArg } from '../../ts/lifecycle/process-ref.js';
import type { ProcessRef } from '../../ts/lifecycle/state-schema.js';
import { hierarchies, removeSubtree, uniqueSubtree } from '../harness/cgroup-subtree.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const GUEST_DIR = path.join(repoRoot, 'build/guest');
/** The busybox rootfs image (`make guest`). */
export const ROOTFS_IMAGE = path.join(repoRoot, 'build/rootfs/busybox.ext4');

/** What `make guest` left out, or null when the end-to-end test can run. */
export function missingGuestParts(): string | null {
  for (const f of ['vmlinux', 'initramfs.cpio.gz']) {
    if (!existsSync(path.join(GUEST_DIR, f))) return `build/guest/${f} missing: run \`make guest\``;
  }
  if (!existsSync(ROOTFS_IMAGE)) return 'build/rootfs/busybox.ext4 missing: run `make guest`';
  return null;
}

/** Host tmpfs size for the sandbox's /dev/shm source: the planner takes it from statfs. */
export const SHM_SIZE_MIB = 24;
const KERNEL_PARAMS =
  'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';

// A timed-out test never reaches its teardown: clean up what is left when the process exits.
const pending = new Set<() => void>();
process.once('exit', () => {
  for (const c of pending) {
    try {
      c();
    } catch {
      // best effort at exit
    }
  }
});

export interface PodFixture {
  readonly dir: string;
  readonly sandboxId: string;
  readonly appId: string;
  readonly config: string;
  readonly sandboxBundle: string;
  readonly appBundle: string;
  readonly stateRoot: string;
  /** The configmap volume on the host (kubelet layout). */
  readonly configmap: string;
  readonly subtree: string;
  readonly options: SandboxOptions;
  /** The guest console, while the state dir exists. */
  readonly consoleLog: string;
  /** Kubelet's update: a new timestamped dir holding `key`, swapped in by renaming `..data`. */
  updateConfigmap(value: string): void;
  /** The lifecycle's cleanup, then unmounts the shm tmpfs, removes the cgroups and the temp dir. Idempotent. */
  cleanup(): Promise<void>;
}

function writeConfig(dir: string, driver: BlockDriver, kubelet: string, image: GuestImage): string {
  const text = [
    '[hypervisor.qemu]',
    'path = "/usr/bin/qemu-system-x86_64"',
    `kernel = "${image.kernel}"`,
    `initrd = "${image.initrd}"`,
    'machine_type = "q35"',
    `kernel_params = "${KERNEL_PARAMS}"`,
    'default_vcpus = 1',
    'default_maxvcpus = 2',
    'default_memory = 512',
    'pcie_root_port = 2',
    'shared_fs = "none"',
    `block_device_driver = "${driver}"`,
    '[agent.kata]',
    '[runtime]',
    'sandbox_cgroup_only = true',
    `kubelet_root_dir = "${kubelet}"`,
    'copy_watch_debounce_ms = 100',
    '',
  ].join('\n');
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(file, text);
  return file;
}

const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** A bundle dir from examples/bundle/config.json, patched, with its own copy of the rootfs image. */
function writeBundle(dir: string, name: string, patch: (s: Record<string, any>) => void): string {
  const bundle = path.join(dir, name);
  mkdirSync(bundle);
  const spec = JSON.parse(readFileSync(path.join(repoRoot, 'examples/bundle/config.json'), 'utf8'));
  // runc's default capabilities, as every containerd and `runc spec` bundle carries them:
  // kata-agent refuses a process without `process.capabilities`.
  spec.process.capabilities ??= {
    bounding: RUNC_DEFAULT_CAPS,
    effective: RUNC_DEFAULT_CAPS,
    permitted: RUNC_DEFAULT_CAPS,
  };
  patch(spec);
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  const image = path.join(dir, `${name}-rootfs.ext4`);
  copyFileSync(ROOTFS_IMAGE, image);
  writeFileSync(
    path.join(bundle, 'rootfs-mounts.json'),
    JSON.stringify([{ type: 'ext4', source: image, options: ['loop', 'rw'] }]),
  );
  return bundle;
}

const mountsWith = (shm: string, extra: object[] = []) => [
  { destination: '/proc', type: 'proc', source: 'proc' },
  {
    destination: '/dev',
    type: 'tmpfs',
    source: 'tmpfs',
    options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
  },
  { destination: '/dev/shm', type: 'bind', source: shm, options: ['rbind', 'rw'] },
  {
    destination: '/sys',
    type: 'sysfs',
    source: 'sysfs',
    options: ['nosuid', 'noexec', 'nodev', 'ro'],
  },
  ...extra,
];

/**
 * The sandbox `e2e-<hex>` runs (on `image`, default build/guest's our-agent image) `sandboxArgs` with the configmap at /etc/config; container
 * `app-<hex>` runs `appArgs`. Both rootfs images are hot-plugged with `driver`.
 */
export function podFixture(
  driver: BlockDriver,
  sandboxArgs: string[],
  appArgs: string[],
  image: GuestImage = {
    kernel: path.join(GUEST_DIR, 'vmlinux'),
    initrd: path.join(GUEST_DIR, 'initramfs.cpio.gz'),
  },
): PodFixture {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-e2e-'));
  const sandboxId = `e2e-${randomBytes(3).toString('hex')}`;
  const appId = `app-${randomBytes(3).toString('hex')}`;
  const stateRoot = path.join(dir, 'state');
  const subtree = uniqueSubtree();
  const shm = path.join(dir, 'shm');
  let mounted = false;
  let stamp = 0;
  const kubelet = path.join(dir, 'kubelet');
  const configmap = path.join(
    kubelet,
    'pods/0b5c8a8e-0000-4000-8000-000000000001/volumes/kubernetes.io~configmap/app-config',
  );
  const updateConfigmap = (value: string) => {
    const data = `..2026_11_28_21_00_0${stamp++}.000000001`;
    mkdirSync(path.join(configmap, data));
    writeFileSync(path.join(configmap, data, 'key'), value);
    const previous = existsSync(path.join(configmap, '..data'))
      ? path.join(configmap, readlinkSync(path.join(configmap, '..data')))
      : null;
    symlinkSync(data, path.join(configmap, '..data_tmp'));
    renameSync(path.join(configmap, '..data_tmp'), path.join(configmap, '..data'));
    if (previous !== null) rmSync(previous, { recursive: true });
  };
  const cleanupAll = async () => {
    pending.delete(exitCleanup);
    await cleanup(sandboxId, { stateRoot });
    exitCleanup();
  };
  const exitCleanup = () => {
    if (mounted) {
      execFileSync('umount', [shm]);
      mounted = false;
    }
    removeSubtree(subtree);
    rmSync(dir, { recursive: true, force: true });
  };
  pending.add(exitCleanup);
  try {
    mkdirSync(shm);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SHM_SIZE_MIB}m`, 'kata-ts-shm', shm]);
    mounted = true;
    mkdirSync(configmap, { recursive: true });
    updateConfigmap('v1');
    symlinkSync('..data/key', path.join(configmap, 'key'));
    const sandboxBundle = writeBundle(dir, 'sandbox', (s) => {
      s.process.args = sandboxArgs;
      s.mounts = mountsWith(shm, [
        { destination: '/etc/config', type: 'bind', source: configmap, options: ['rbind', 'ro'] },
      ]);
      s.linux.cgroupsPath = `/${subtree}/${sandboxId}`;
      s.annotations = {
        'io.kubernetes.cri.container-type': 'sandbox',
        'io.kubernetes.cri.sandbox-id': sandboxId,
      };
    });
    const appBundle = writeBundle(dir, 'app', (s) => {
      s.process.args = appArgs;
      s.mounts = mountsWith(shm);
      s.linux.cgroupsPath = `/${subtree}/${appId}`;
      s.annotations = {
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.sandbox-id': sandboxId,
      };
    });
    const config = writeConfig(dir, driver, kubelet, image);
    const options: SandboxOptions = {
      stateRoot,
      accel: 'tcg',
      runtimePid: process.pid,
      bootTimeoutMs: 120_000,
    };
    const consoleLog = path.join(stateRoot, sandboxId, 'vm', 'console.log');
    return {
      dir,
      sandboxId,
      appId,
      config,
      sandboxBundle,
      appBundle,
      stateRoot,
      configmap,
      subtree,
      options,
      consoleLog,
      updateConfigmap,
      cleanup: cleanupAll,
    };
  } catch (e) {
    exitCleanup();
    throw e;
  }
}

/** What of the sandbox is still on the machine (empty when clean). */
export function leftovers(f: PodFixture, recorded: readonly ProcessRef[]): string[] {
  const left: string[] = [];
  const stateDir = path.join(f.stateRoot, f.sandboxId);
  if (existsSync(stateDir)) left.push(`state dir ${stateDir}`);
  for (const h of hierarchies()) {
    const cg = path.join(h, f.subtree, f.sandboxId);
    if (existsSync(cg)) left.push(`cgroup ${cg}`);
  }
  for (const ref of recorded) if (isAlive(ref)) left.push(`pid ${ref.pid}`);
  for (const ref of processesWithArg(stateDir)) left.push(`process ${ref.pid} using ${stateDir}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(f.dir) && !l.includes(`${f.dir}/shm `));
  left.push(...mounts.map((m) => `mount ${m}`));
  return left;
}
