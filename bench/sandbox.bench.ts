// Sandbox lifecycle figures on the real guest (TCG; skipped without `make guest`):
// sandbox.create_to_running: createSandbox + addContainer + startContainer of the demo's busybox
//   container (cgroups, QEMU, agent, CreateSandbox, rootfs hot-plug, configmap copy + watcher,
//   CreateContainer, StartContainer) vs the bare floor in the same run: the same VM booted by
//   ts/guest/boot-agent-guest.ts until the agent answers a health check.
// sandbox.teardown: deleteSandbox (watchers, DestroySandbox, QEMU stop, cgroups, dirs, state) vs
//   the bare boot's stop (QMP quit).
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lowerIsBetter, type Metrics } from './metric.js';
import { bootAgentGuest } from '../ts/guest/boot-agent-guest.js';
import { guestImage } from '../ts/guest/guest-shell.js';
import { addContainer, kill, startContainer, wait } from '../ts/lifecycle/container.js';
import { createSandbox, deleteSandbox } from '../ts/lifecycle/sandbox.js';
import { DEFAULT_QEMU } from '../ts/qemu/accel.js';

const ROUNDS = 3;
const root = fileURLToPath(new URL('..', import.meta.url));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function demoInputs(dir: string, sid: string): { config: string; bundle: string } {
  const render = (file: string) =>
    readFileSync(path.join(root, 'examples/demo', file), 'utf8')
      .replaceAll('@ROOT@', root.replace(/\/$/, ''))
      .replaceAll('@DEMO@', dir)
      .replaceAll('@SID@', sid);
  const config = path.join(dir, 'configuration.toml');
  writeFileSync(config, render('configuration.toml.in'));
  const bundle = path.join(dir, 'bundle');
  mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  const spec = JSON.parse(render('config.json.in'));
  spec.process.args = ['sh', '-c', 'sleep 60'];
  writeFileSync(path.join(bundle, 'config.json'), JSON.stringify(spec));
  copyFileSync(path.join(root, 'build/rootfs/busybox.ext4'), path.join(dir, 'rootfs.ext4'));
  writeFileSync(
    path.join(bundle, 'rootfs-mounts.json'),
    JSON.stringify([{ type: 'ext4', source: path.join(dir, 'rootfs.ext4'), options: ['loop'] }]),
  );
  const cm = path.join(dir, 'kubelet/pods/demo-pod/volumes/kubernetes.io~configmap/app-config');
  mkdirSync(cm, { recursive: true });
  writeFileSync(path.join(cm, 'greeting'), 'hello\n');
  return { config, bundle };
}

async function oursOnce(
  dir: string,
  i: number,
): Promise<{ up: number; down: number; plan: import('../ts/plan/plan.js').ResourcePlan }> {
  const sid = `bench-${process.pid}-${i}`;
  const { config, bundle } = demoInputs(dir, sid);
  const t0 = performance.now();
  const sb = (
    await createSandbox(
      { sandboxId: sid, configPath: config, bundle },
      { stateRoot: path.join(dir, 'state'), accel: 'tcg' },
    )
  )._unsafeUnwrap();
  try {
    (await addContainer(sb, { id: sid, bundle }))._unsafeUnwrap();
    (await startContainer(sb, sid))._unsafeUnwrap();
    const up = performance.now() - t0;
    const exited = wait(sb, sid);
    (await kill(sb, sid, 9))._unsafeUnwrap();
    await exited;
    const t1 = performance.now();
    (await deleteSandbox(sb))._unsafeUnwrap();
    return { up, down: performance.now() - t1, plan: sb.plan };
  } finally {
    await deleteSandbox(sb);
  }
}

export async function run(): Promise<Metrics> {
  const image = guestImage(path.join(root, 'build/guest'));
  if (!image || !existsSync(path.join(root, 'build/rootfs/busybox.ext4'))) {
    process.stderr.write('bench: sandbox: guest not built (make guest), skipped\n');
    return {};
  }
  const ups: number[] = [];
  const downs: number[] = [];
  const peerUps: number[] = [];
  const peerDowns: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-bench-sandbox-'));
    try {
      const ours = await oursOnce(dir, i);
      ups.push(ours.up);
      downs.push(ours.down);
      const config = {
        ...(await import('../ts/config/parse-config.js'))
          .parseKataConfig(readFileSync(path.join(dir, 'configuration.toml'), 'utf8'), 'bench')
          ._unsafeUnwrap().config.hypervisor,
      };
      const guest = (
        await bootAgentGuest({
          plan: ours.plan,
          config: { ...config, path: config.path || DEFAULT_QEMU },
          image,
          runDir: path.join(dir, 'peer'),
        })
      )._unsafeUnwrap();
      peerUps.push(guest.bootMs);
      const t = performance.now();
      await guest.stop();
      peerDowns.push(performance.now() - t);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      try {
        for (const h of [
          'cpu',
          'cpuset',
          'memory',
          'pids',
          'blkio',
          'devices',
          'freezer',
          'cpuacct',
          'systemd',
          'unified',
          'hugetlb',
          'net_cls',
          'perf_event',
        ])
          rmdirSync(`/sys/fs/cgroup/${h}/kata-ts-demo`);
      } catch {
        // not there or not empty
      }
    }
  }
  const note = `TCG, median of ${ROUNDS}; peer: the same VM booted bare until the agent answers`;
  return {
    'sandbox.create_to_running': lowerIsBetter(median(ups), median(peerUps), 'ms', note),
    'sandbox.teardown': lowerIsBetter(
      median(downs),
      median(peerDowns),
      'ms',
      'TCG; peer: QMP quit of the bare VM',
    ),
  };
}
