// A sandbox fixture for lifecycle tests: a temp dir with a Kata config (shared_fs = none, the
// built guest kernel, VM kept paused), a bundle whose rootfs is a raw disk image (blockfile
// `loop`, hot-plugged as virtio-scsi) with a kubelet configmap volume (copied + live-synced), a
// unique cgroup subtree, and a host-side kata-ts-agent standing in for the guest's. Teardown
// removes the state (cleanup), kills what it started by pid, removes the cgroups and the dir.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
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
import type { ExecutionContext } from 'ava';
import { cleanup, type SandboxOptions } from '../../ts/lifecycle/sandbox.js';
import { isAlive, processesWithArg } from '../../ts/lifecycle/process-ref.js';
import type { ProcessRef } from '../../ts/lifecycle/state-schema.js';
import { exampleBundle, exampleConfig, repoRoot } from '../cli/cli-harness.js';
import { removeSubtree, uniqueSubtree, hierarchies } from '../harness/cgroup-subtree.js';
import { requireAgentBinary } from '../agent/agent-harness.js';
import { track } from '../qemu/qemu-harness.js';

/**
 * The CLI with the lifecycle test hooks (KATA_TS_TEST_AGENT, KATA_TS_QEMU_PAUSED, KATA_TS_CRASH_AT):
 * a test-only entry point calling the same `main` as bin/kata-ts.js; the shipped CLI ignores them.
 */
export const TEST_CLI = path.join(repoRoot, '__test__/fixtures/kata-ts-test-cli.ts');

export interface Fixture {
  readonly dir: string;
  readonly sandboxId: string;
  readonly config: string;
  readonly bundle: string;
  readonly stateRoot: string;
  readonly agentSocket: string;
  readonly agentRoot: string;
  readonly agentPid: number;
  readonly configmap: string;
  readonly subtree: string;
  /** Library options matching the CLI test hooks. */
  readonly options: SandboxOptions;
  /** Env for a CLI child started from TEST_CLI (the hooks are read by that test entry only). */
  readonly env: NodeJS.ProcessEnv;
}

function writeConfig(dir: string, kubelet: string, sharedFs: string): string {
  const guest = path.join(repoRoot, 'build/guest');
  let text = readFileSync(exampleConfig, 'utf8');
  text = text
    .replace(/^kernel = .*$/m, `kernel = "${guest}/vmlinux"`)
    .replace(/^image = .*$/m, `image = ""\ninitrd = "${guest}/initramfs.cpio.gz"`)
    .replace(/^shared_fs = .*$/m, `shared_fs = "${sharedFs}"`)
    .replace(/^default_memory = .*$/m, 'default_memory = 256')
    .replace(
      '[runtime]\n',
      `[runtime]\nkubelet_root_dir = "${kubelet}"\ncopy_watch_debounce_ms = 50\n`,
    );
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(file, text);
  return file;
}

/** Starts the agent; killed by pid in teardown. */
function startAgent(
  t: ExecutionContext,
  socket: string,
  root: string,
  delays: Record<string, number>,
): number {
  const args = [
    '--listen',
    `unix:${socket}`,
    '--root',
    root,
    ...Object.entries(delays).flatMap(([m, ms]) => ['--delay-method', `${m}:${ms}`]),
  ];
  const child = spawn(requireAgentBinary(), args, { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  track(child.pid, exited);
  t.teardown(async () => {
    child.kill('SIGKILL');
    await exited;
  });
  return child.pid!;
}

export interface FixtureOptions {
  readonly delays?: Record<string, number>;
  readonly configmapFiles?: number;
  /** virtio-fs: the rootfs is the bundle's directory shared with the guest (no block rootfs). */
  readonly sharedFs?: 'none' | 'virtio-fs';
}

/** The sandbox's shared dir on the host (plan.hostDirs.sharedSandbox, not rootless). */
export const sharedSandboxDir = (sid: string) => `/run/kata-containers/shared/sandboxes/${sid}`;

export async function fixture(t: ExecutionContext, o: FixtureOptions = {}): Promise<Fixture> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-lifecycle-'));
  const sandboxId = `sb-${randomBytes(3).toString('hex')}`;
  const subtree = uniqueSubtree();
  const stateRoot = path.join(dir, 'state');
  t.teardown(async () => {
    await cleanup(sandboxId, { stateRoot });
    removeSubtree(subtree);
    rmSync(dir, { recursive: true, force: true });
  });
  const kubelet = path.join(dir, 'kubelet');
  const configmap = path.join(kubelet, 'pods/uid-1/volumes/kubernetes.io~configmap/app-config');
  mkdirSync(configmap, { recursive: true });
  writeFileSync(path.join(configmap, 'greeting'), 'hello\n');
  for (let i = 0; i < (o.configmapFiles ?? 0); i++)
    writeFileSync(path.join(configmap, `f${i}`), Buffer.alloc(256 * 1024, i));
  const disk = path.join(dir, 'rootfs.img');
  writeFileSync(disk, Buffer.alloc(1 << 20));
  const bundle = path.join(dir, 'bundle');
  mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  const spec = JSON.parse(readFileSync(path.join(exampleBundle, 'config.json'), 'utf8'));
  spec.linux.cgroupsPath = `/${subtree}/${sandboxId}`;
  spec.annotations = {};
  spec.mounts.push({
    destination: '/etc/config',
    type: 'bind',
    source: configmap,
    options: ['rbind', 'ro'],
  });
  // A single file: copied once (files are never watched).
  writeFileSync(path.join(dir, 'hosts'), '127.0.0.1 localhost\n');
  spec.mounts.push({
    destination: '/etc/hosts',
    type: 'bind',
    source: path.join(dir, 'hosts'),
    options: ['rbind', 'ro'],
  });
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  if (o.sharedFs === 'virtio-fs')
    writeFileSync(path.join(bundle, 'rootfs', 'marker'), 'rootfs content\n');
  else
    writeFileSync(
      path.join(bundle, 'rootfs-mounts.json'),
      JSON.stringify([{ type: 'ext4', source: disk, options: ['loop'] }]),
    );
  const agentSocket = path.join(dir, 'agent.sock');
  const agentRoot = path.join(dir, 'agent-root');
  mkdirSync(agentRoot);
  const agentPid = startAgent(t, agentSocket, agentRoot, o.delays ?? {});
  const config = writeConfig(dir, kubelet, o.sharedFs ?? 'none');
  const options: SandboxOptions = {
    stateRoot,
    agentTarget: { kind: 'unix', path: agentSocket },
    paused: true,
    accel: 'tcg',
    runtimePid: process.pid,
  };
  const env = {
    ...process.env,
    KATA_TS_STATE_ROOT: stateRoot,
    KATA_TS_TEST_AGENT: agentSocket,
    KATA_TS_QEMU_PAUSED: '1',
    KATA_TS_QEMU_ACCEL: 'tcg',
  };
  return {
    dir,
    sandboxId,
    config,
    bundle,
    stateRoot,
    agentSocket,
    agentRoot,
    agentPid,
    configmap,
    subtree,
    options,
    env,
  };
}

/** What of a sandbox is still on the machine (empty when clean). */
export function leftovers(f: Fixture, recorded: readonly ProcessRef[] = []): string[] {
  const left: string[] = [];
  const stateDir = path.join(f.stateRoot, f.sandboxId);
  if (existsSync(stateDir)) left.push(`state dir ${stateDir}`);
  for (const h of hierarchies()) {
    const cg = path.join(h, f.subtree, f.sandboxId);
    if (existsSync(cg)) left.push(`cgroup ${cg}`);
  }
  for (const ref of recorded) if (isAlive(ref)) left.push(`pid ${ref.pid}`);
  for (const ref of processesWithArg(stateDir)) left.push(`process ${ref.pid} using ${stateDir}`);
  const shared = sharedSandboxDir(f.sandboxId);
  if (existsSync(shared)) left.push(`shared dir ${shared}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(f.dir) || l.includes(shared));
  left.push(...mounts.map((m) => `mount ${m}`));
  const users = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`kata-`) && l.includes(f.sandboxId));
  left.push(...users);
  return left;
}

/** Threads of `pid` named like the native watcher (`kata-ts-watch`). */
export function watcherThreads(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).filter((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === 'kata-ts-watch';
      } catch {
        return false;
      }
    }).length;
  } catch {
    return 0;
  }
}
