// `kata-ts run` with Kata's stock runtime-rs QEMU configuration, filled by
// scripts/fill-stock-config.sh (upstream's Makefile rule, only paths changed), on the booted guest
// under TCG, once per agent image (ours, upstream kata-agent). The stock file as is: virtio-scsi
// block devices, virtio-fs with virtiofsd, default_bridges = 1, 2048 MiB, static sizing. The
// container's rootfs is a busybox ext4 image (blockfile `loop` mount, hot-plugged as virtio-scsi
// and mounted at the runtime-rs block-rootfs path in the shared dir), a kubelet configmap is
// shared over virtio-fs as a watchable-bind. Asserted: the agent's GetGuestDetails line
// (`--agent-details`), the configmap and the root mount read inside the container, exit 0, and
// nothing left. Skipped loudly without ../shared or an image; promised in CI (stock-config).
import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../cli/cli-harness.js';
import { forEachGuestImage } from '../guest/guest-images.js';
import { needs } from '../harness/prereq.js';
import { fixture, leftovers } from '../lifecycle/lifecycle-harness.js';

const rootfsImage = path.join(repoRoot, 'build/rootfs/busybox.ext4');
const template = path.join(
  repoRoot,
  '../shared/peers/kata-config/configuration-qemu-runtime-rs.toml.in',
);
const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

forEachGuestImage(
  "kata-ts run with Kata's stock runtime-rs configuration (only paths changed): block rootfs, virtio-fs configmap, agent self-description",
  async (t, img) => {
    const f = await fixture(t);
    const bundleConfig = path.join(f.bundle, 'config.json');
    const spec = JSON.parse(readFileSync(bundleConfig, 'utf8'));
    spec.process.capabilities ??= {
      bounding: RUNC_DEFAULT_CAPS,
      effective: RUNC_DEFAULT_CAPS,
      permitted: RUNC_DEFAULT_CAPS,
    };
    writeFileSync(bundleConfig, JSON.stringify(spec));
    copyFileSync(rootfsImage, path.join(f.dir, 'rootfs.img'));
    execFileSync(
      'bash',
      [
        path.join(repoRoot, 'scripts/fill-stock-config.sh'),
        f.config,
        '--guest',
        img.name === 'kata-agent' ? 'kata' : 'ours',
      ],
      { stdio: 'pipe' },
    );
    t.regex(readFileSync(f.config, 'utf8'), /^default_bridges = 1$/m, 'the stock file');

    const { KATA_TS_TEST_AGENT: _a, KATA_TS_QEMU_PAUSED: _p, ...env } = f.env;
    const cmd = ['sh', '-c', `cat /etc/config/greeting; grep ' / ' /proc/mounts | head -n 1`];
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            path.join(repoRoot, 'ts/cli/run.ts'),
            'run',
            '--agent-details',
            '--config',
            f.config,
            '--id',
            f.sandboxId,
            f.bundle,
            '--',
            ...cmd,
          ],
          { env, cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      },
    );
    t.is(run.code, 0, run.stderr);
    const agent = /^agent: version (.+?), (runs as PID 1|not PID 1), /m.exec(run.stderr);
    t.truthy(agent, `no agent line in:\n${run.stderr}`);
    if (img.name === 'kata-agent') t.is(agent?.[1], '4.1.0', 'upstream kata-agent answered');
    else t.is(agent?.[2], 'runs as PID 1', 'our agent answered');
    t.log(`${img.name}: ${agent?.[0]}`);
    t.regex(run.stdout, /^hello$/m, 'the configmap, shared over virtio-fs');
    t.regex(
      run.stdout,
      /^\/dev\/sd[a-z] \/ ext4 /m,
      'the rootfs: the hot-plugged virtio-scsi disk',
    );
    t.deepEqual(leftovers(f), []);
  },
  {
    timeout: 300_000,
    needs: [
      needs.file(rootfsImage, 'busybox rootfs image (make guest)'),
      needs.file(template, 'stock Kata configuration (../shared/peers/kata-config)'),
      needs.file('/usr/lib/qemu/virtiofsd', "Debian's virtiofsd"),
    ],
  },
);
