// `kata-ts run` against the real guest (build/guest, TCG), once per agent image
// (forEachGuestImage: our agent as PID 1, upstream kata-agent): a busybox container on a hot-plugged ext4 rootfs, its stdout and stderr streamed to ours, our
// exit status its own, and nothing left afterwards. A missing image or rootfs image is a loud
// skip (with CI=true, a failure of the promised guest suite).
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../cli/cli-harness.js';
import { fixture, leftovers } from './lifecycle-harness.js';
import { needs } from '../harness/prereq.js';
import { forEachGuestImage } from '../guest/guest-images.js';

const rootfsImage = path.join(repoRoot, 'build/rootfs/busybox.ext4');
const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

forEachGuestImage(
  'run streams the container output and exits with its status; nothing is left',
  async (t, img) => {
    const f = await fixture(t);
    // runc's default capabilities, as containerd's bundles carry them (kata-agent requires them).
    const bundleConfig = path.join(f.bundle, 'config.json');
    const spec = JSON.parse(readFileSync(bundleConfig, 'utf8'));
    spec.process.capabilities ??= {
      bounding: RUNC_DEFAULT_CAPS,
      effective: RUNC_DEFAULT_CAPS,
      permitted: RUNC_DEFAULT_CAPS,
    };
    writeFileSync(bundleConfig, JSON.stringify(spec));
    copyFileSync(rootfsImage, path.join(f.dir, 'rootfs.img'));
    const params =
      'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';
    writeFileSync(
      f.config,
      readFileSync(f.config, 'utf8')
        .replace(/^kernel_params = .*$/m, `kernel_params = "${params}"`)
        .replace(/^kernel = .*$/m, `kernel = "${img.kernel}"`)
        .replace(/^initrd = .*$/m, `initrd = "${img.initrd}"`)
        .replace(/^default_memory = .*$/m, 'default_memory = 512'),
    );
    const { KATA_TS_TEST_AGENT: _a, KATA_TS_QEMU_PAUSED: _p, ...env } = f.env;
    const cmd = ['sh', '-c', 'cat /etc/config/greeting; echo to-stderr >&2; exit 3'];
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve) => {
        const child = spawn(
          process.execPath,
          [
            '--import',
            'tsx',
            path.join(repoRoot, 'ts/cli/run.ts'),
            'run',
            '--config',
            f.config,
            '--id',
            f.sandboxId,
            f.bundle,
            '--',
            ...cmd,
          ],
          {
            env,
            cwd: repoRoot,
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        child.once('exit', (code) => resolve({ code, stdout, stderr }));
      },
    );
    t.is(run.stdout, 'hello\n', run.stderr);
    t.regex(run.stderr, /to-stderr/);
    t.is(run.code, 3);
    t.deepEqual(leftovers(f), []);
  },
  { timeout: 240_000, needs: [needs.file(rootfsImage, 'busybox rootfs image (make guest)')] },
);
