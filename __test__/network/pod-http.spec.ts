// Pod networking end to end (Kata's tcfilter model), once per guest image: a pod whose netns was
// made like CNI makes one runs `kata-ts run` with a container serving HTTP on the pod IP; the host
// side of the veth fetches it. Afterwards the netns carries no tap, qdisc or filter of ours.
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { repoRoot } from '../cli/cli-harness.js';
import { fixture, leftovers } from '../lifecycle/lifecycle-harness.js';
import { needs } from '../harness/prereq.js';
import { forEachGuestImage } from '../guest/guest-images.js';
import { makePodNetns, tcResidue } from './netns-fixture.js';

const rootfsImage = path.join(repoRoot, 'build/rootfs/busybox.ext4');
const RUNC_DEFAULT_CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
const PARAMS =
  'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';

/** GET http://<ip>:<port>/ until it answers or `deadline` passes; the body or null. */
async function fetchUntil(ip: string, port: number, deadline: number): Promise<string | null> {
  while (Date.now() < deadline) {
    const body = await new Promise<string | null>((resolve) => {
      const req = http.get({ host: ip, port, path: '/', timeout: 2_000 }, (res) => {
        let data = '';
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve(data));
        res.on('error', () => resolve(null));
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
    });
    if (body !== null) return body;
    await new Promise((r) => setTimeout(r, 500));
  }
  return null;
}

forEachGuestImage(
  'a container serving HTTP is reached at the pod IP from the host side of the veth; teardown leaves no tap or filter',
  async (t, img) => {
    const net = makePodNetns(t);
    const f = await fixture(t);
    const bundleConfig = path.join(f.bundle, 'config.json');
    const spec = JSON.parse(readFileSync(bundleConfig, 'utf8'));
    spec.process.capabilities ??= {
      bounding: RUNC_DEFAULT_CAPS,
      effective: RUNC_DEFAULT_CAPS,
      permitted: RUNC_DEFAULT_CAPS,
    };
    spec.linux.namespaces = [
      { type: 'pid' },
      { type: 'ipc' },
      { type: 'uts' },
      { type: 'mount' },
      { type: 'network', path: net.path },
    ];
    writeFileSync(bundleConfig, JSON.stringify(spec));
    copyFileSync(rootfsImage, path.join(f.dir, 'rootfs.img'));
    writeFileSync(
      f.config,
      readFileSync(f.config, 'utf8')
        .replace(/^kernel_params = .*$/m, `kernel_params = "${PARAMS}"`)
        .replace(/^kernel = .*$/m, `kernel = "${img.kernel}"`)
        .replace(/^initrd = .*$/m, `initrd = "${img.initrd}"`)
        .replace(/^default_memory = .*$/m, 'default_memory = 512'),
    );
    const { KATA_TS_TEST_AGENT: _a, KATA_TS_QEMU_PAUSED: _p, ...env } = f.env;
    // One HTTP exchange, then the container exits 0 (busybox nc serves one connection).
    const serve =
      "printf 'HTTP/1.0 200 OK\\r\\nContent-Length: 9\\r\\n\\r\\nhello-pod' | nc -l -p 8080; ip addr show eth0 >&2";
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
        'sh',
        '-c',
        serve,
      ],
      { env, cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const body = await Promise.race([
      fetchUntil(net.podIp, 8080, Date.now() + 180_000),
      exited.then(() => null),
    ]);
    const code = await exited;
    t.is(body, 'hello-pod', stderr);
    t.is(code, 0, stderr);
    t.regex(stderr, new RegExp(`inet ${net.podIp.replaceAll('.', '\\.')}/24`));
    t.deepEqual(tcResidue(net), []);
    t.deepEqual(leftovers(f), []);
  },
  { timeout: 300_000, needs: [needs.file(rootfsImage, 'busybox rootfs image (make guest)')] },
);
