// A planned pod for the guest benchmark (bench/guest.bench.ts), which times the agent steps
// alone and so drives them directly rather than through the lifecycle (the end-to-end test,
// e2e.spec.ts, goes through the lifecycle): two containers planned by the real planner from
// example specs, on real host paths — a busybox ext4 rootfs image per container (copies of
// build/rootfs/busybox.ext4), a kubelet-style configmap directory (`..data` symlinks), a host
// tmpfs of a known size as the sandbox's /dev/shm source — and the steps that run one planned
// container through the agent, copies through the production copy engine (crates/watch).
// `cleanup()` unmounts and removes all.
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromJson } from '@bufbuild/protobuf';
import type { AgentClient, AgentTarget } from '../../ts/agent/client.js';
import type { BlockDriver, HypervisorConfig, KataConfig } from '../../ts/config/kata-config.js';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import { CreateContainerRequestSchema, CreateSandboxRequestSchema } from '../../ts/gen/agent_pb.js';
import { guestImage, type GuestImage } from '../../ts/guest/guest-shell.js';
import { gatherHostFacts } from '../../ts/host/gather-host-facts.js';
import { plan, type ContainerPlan, type ResourcePlan } from '../../ts/plan/plan.js';
import { hotplugBlock, unplugBlock } from '../../ts/qemu/hotplug.js';
import type { QmpClient } from '../../ts/qemu/qmp-client.js';
import { startLiveSync } from '../../ts/sync/live-sync.js';
import { parseOciSpec, type OciSpec } from '../../ts/spec/oci-spec.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The guest (`make guest`): kernel + initramfs, null when not built. */
export const GUEST_IMAGE: GuestImage | null = guestImage(path.join(repoRoot, 'build/guest'));
export { missingGuestParts } from './guest-fixture.js';

export const CONFIGMAP_TEXT = 'value-from-configmap\n';
/** Host tmpfs size for the sandbox's /dev/shm source: the planner takes it from statfs. */
export const SHM_SIZE_MIB = 24;
const QMP_TIMEOUT_MS = 20_000;
/** Budget of each agent step that can block on the workload (reads, waits). */
export const STEP_TIMEOUT_MS = 30_000;

// A timed-out test never reaches its teardown: unmount and remove what is left when the process exits.
const pending = new Set<() => void>();
process.once('exit', () => {
  for (const cleanup of pending) {
    try {
      cleanup();
    } catch {
      // best effort at exit
    }
  }
});

/** Rejects with `what` if `p` does not settle within `ms`. */
export function within<T>(ms: number, p: PromiseLike<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) =>
      (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
  );
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface PodFixture {
  readonly dir: string;
  readonly config: KataConfig;
  readonly hv: HypervisorConfig;
  readonly plan: ResourcePlan;
  /** Unmounts the shm tmpfs and removes the temp dir. Idempotent. */
  cleanup(): void;
}

/** `runc spec`'s default capability set (the same list in every set but ambient and inheritable). */
const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/**
 * examples/bundle/config.json patched. The process gets runc's default capabilities, as every
 * containerd and `runc spec` bundle has: kata-agent refuses a process without
 * `process.capabilities` ("missing process capabilities").
 */
function spec(patch: (s: Record<string, any>) => void): OciSpec {
  const json = JSON.parse(readFileSync(path.join(repoRoot, 'examples/bundle/config.json'), 'utf8'));
  json.process.capabilities ??= {
    bounding: RUNC_DEFAULT_CAPS,
    effective: RUNC_DEFAULT_CAPS,
    permitted: RUNC_DEFAULT_CAPS,
  };
  patch(json);
  return parseOciSpec(JSON.stringify(json), 'config.json')._unsafeUnwrap();
}

const baseMounts = (shm: string) => [
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
];

/** A kubelet configmap volume as kubelet writes it: `key` → `..data/key`, `..data` → a timestamped dir. */
function configmapVolume(kubelet: string): string {
  const dir = path.join(
    kubelet,
    'pods/0b5c8a8e-0000-4000-8000-000000000001/volumes/kubernetes.io~configmap/app-config',
  );
  const stamped = path.join(dir, '..2026_11_28_21_00_00.000000001');
  mkdirSync(stamped, { recursive: true });
  writeFileSync(path.join(stamped, 'key'), CONFIGMAP_TEXT);
  symlinkSync('..2026_11_28_21_00_00.000000001', path.join(dir, '..data'));
  symlinkSync('..data/key', path.join(dir, 'key'));
  return dir;
}

/** What a suite changes in the planned pod (the defaults are the benchmark's pod). */
export interface PodOptions {
  /** The sandbox's `hostname` (the app container then has none of its own). */
  readonly hostname?: string;
  /** The sandbox container's args (default `cat /etc/config/key`). */
  readonly sandboxArgs?: readonly string[];
  /** The app container's args (default `df -k /dev/shm`). */
  readonly appArgs?: readonly string[];
  /** More mounts for the app container, made on the host in `dir` first. */
  readonly appMounts?: (dir: string) => object[];
  /** `default_maxvcpus` (vCPU hot-add); default the example config's. */
  readonly maxVcpus?: number;
  /** More cleanup, run before the temp dir is removed (e.g. detach a loop device). */
  readonly onCleanup?: () => void;
}

/**
 * Plans sandbox `sb` (`cat /etc/config/key` with the configmap at /etc/config) and container
 * `app` (`df -k /dev/shm`), each on its own copy of the busybox image, hot-plugged with `driver`.
 */
export function podFixture(driver: BlockDriver, o: PodOptions = {}): PodFixture {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-guest-'));
  const shm = path.join(dir, 'shm');
  let mounted = false;
  const cleanup = () => {
    o.onCleanup?.();
    if (mounted) {
      execFileSync('umount', [shm]);
      mounted = false;
    }
    rmSync(dir, { recursive: true, force: true });
    pending.delete(cleanup);
  };
  pending.add(cleanup);
  try {
    mkdirSync(shm);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SHM_SIZE_MIB}m`, 'kata-ts-shm', shm]);
    mounted = true;
    const kubelet = path.join(dir, 'kubelet');
    const configmap = configmapVolume(kubelet);
    const images = ['sb', 'app'].map((id) => {
      const image = path.join(dir, `${id}-rootfs.ext4`);
      copyFileSync(ROOTFS_IMAGE, image);
      return [{ type: 'ext4', source: image, options: ['loop', 'rw'] }];
    });
    const sbSpec = spec((s) => {
      s.process.args = [...(o.sandboxArgs ?? ['cat', '/etc/config/key'])];
      if (o.hostname !== undefined) s.hostname = o.hostname;
      s.mounts = [
        ...baseMounts(shm),
        { destination: '/etc/config', type: 'bind', source: configmap, options: ['rbind', 'ro'] },
      ];
      s.annotations = {
        'io.kubernetes.cri.container-type': 'sandbox',
        'io.kubernetes.cri.sandbox-id': 'sb',
      };
    });
    const appSpec = spec((s) => {
      s.process.args = [...(o.appArgs ?? ['df', '-k', '/dev/shm'])];
      s.mounts = [...baseMounts(shm), ...(o.appMounts?.(dir) ?? [])];
      // Like a pod's app container: no hostname of its own, the sandbox's (CreateSandbox's).
      if (o.hostname !== undefined) delete s.hostname;
      s.annotations = {
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.sandbox-id': 'sb',
      };
    });
    const parsed = parseKataConfig(
      readFileSync(path.join(repoRoot, 'examples/configuration-qemu.toml'), 'utf8'),
      'configuration-qemu.toml',
    )._unsafeUnwrap().config;
    const hv: HypervisorConfig = {
      ...parsed.hypervisor,
      sharedFs: 'none',
      blockDeviceDriver: driver,
      pcieRootPort: 3,
      ...(o.maxVcpus !== undefined ? { defaultMaxVcpus: o.maxVcpus } : {}),
      defaultMemoryMiB: 512,
      defaultMaxMemoryMiB: 0,
      initdata: '',
    };
    const config: KataConfig = {
      ...parsed,
      hypervisor: hv,
      runtime: { ...parsed.runtime, kubeletRootDir: kubelet },
    };
    const host = gatherHostFacts([sbSpec, appSpec], {
      rootfsMounts: images,
      kubeletRootDir: kubelet,
    });
    const planned = plan({
      config,
      configSource: 'configuration-qemu.toml',
      sandbox: {
        id: 'sb',
        bundleDir: path.join(dir, 'sb'),
        spec: sbSpec,
        rootfsMounts: images[0]!,
      },
      containers: [
        { id: 'app', bundleDir: path.join(dir, 'app'), spec: appSpec, rootfsMounts: images[1]! },
      ],
      host,
    });
    if (planned.isErr()) throw new Error(planned.error.problems.map((p) => p.message).join('\n'));
    return { dir, config, hv: config.hypervisor, plan: planned.value, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** CreateSandbox with the plan's request. */
export async function createSandbox(agent: AgentClient, p: ResourcePlan): Promise<void> {
  (await agent.createSandbox(fromJson(CreateSandboxRequestSchema, p.createSandbox))).match(
    () => undefined,
    (e) => {
      throw new Error(`CreateSandbox: ${e.message}`);
    },
  );
}

/** Hot-plugs the container's planned block devices and copies its copy steps once (the production engine). */
export async function prepareContainer(
  agent: AgentClient,
  target: AgentTarget,
  qmp: QmpClient,
  c: ContainerPlan,
): Promise<void> {
  for (const d of c.blockDevices)
    (await hotplugBlock(qmp, d, { timeoutMs: QMP_TIMEOUT_MS }))._unsafeUnwrap();
  for (const s of c.copies) {
    const r = await startLiveSync({
      source: s.source,
      destinations: [s.guestPath],
      agent: target,
      connection: agent.connection,
      watch: false,
    });
    if (r.isErr()) throw new Error(`copy ${s.source} → ${s.guestPath}: ${r.error.message}`);
    r.value.close();
  }
}

/** WaitProcess of the init process, bounded. */
export async function waitInit(agent: AgentClient, containerId: string): Promise<number> {
  const r = await within(
    STEP_TIMEOUT_MS,
    agent.waitProcess(containerId, ''),
    `WaitProcess ${containerId}`,
  );
  if (r.isErr()) throw new Error(`WaitProcess ${containerId}: ${r.error.message}`);
  return r.value;
}

/** CreateContainer with the plan's request, then StartContainer. */
export async function createAndStart(agent: AgentClient, c: ContainerPlan): Promise<void> {
  const created = await agent.createContainer(
    fromJson(CreateContainerRequestSchema, c.createContainer),
  );
  if (created.isErr()) throw new Error(`CreateContainer ${c.id}: ${created.error.message}`);
  const started = await agent.startContainer(c.id);
  if (started.isErr()) throw new Error(`StartContainer ${c.id}: ${started.error.message}`);
}

/** Reads the init process's stdout to its end. */
export async function readAllStdout(
  agent: AgentClient,
  containerId: string,
  onFirstByte?: () => void,
): Promise<string> {
  const chunks: Buffer[] = [];
  for (;;) {
    const r = await within(
      STEP_TIMEOUT_MS,
      agent.readStdout(containerId, '', 64 * 1024),
      `ReadStdout ${containerId}`,
    );
    if (r.isErr()) {
      // End of stream is an empty read; some agents report it as an error once the process is gone.
      if (chunks.length > 0) break;
      throw new Error(`ReadStdout ${containerId}: ${r.error.message}`);
    }
    if (r.value.length === 0) break;
    if (chunks.length === 0) onFirstByte?.();
    chunks.push(Buffer.from(r.value));
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** RemoveContainer, then unplug its devices. */
export async function removeContainer(
  agent: AgentClient,
  qmp: QmpClient,
  c: ContainerPlan,
): Promise<void> {
  const removed = await agent.removeContainer(c.id);
  if (removed.isErr()) throw new Error(`RemoveContainer ${c.id}: ${removed.error.message}`);
  for (const d of c.blockDevices) (await unplugBlock(qmp, d.id, QMP_TIMEOUT_MS))._unsafeUnwrap();
}
