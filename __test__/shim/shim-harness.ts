// The kata-ts shim under a private containerd (__test__/containerd harness): a shim dir holding
// `containerd-shim-kata-ts-v2`, a wrapper that bakes in the test's environment (config, test
// hooks) and runs ts/shim/run.ts with tsx, and a Kata config for the built guest (virtio-fs via
// QEMU's virtiofsd). Everything lives in one temp dir removed in teardown, after containerd.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { exampleConfig, repoRoot } from '../cli/cli-harness.js';
import { busyboxArchive, BUSYBOX_IMAGE } from '../containerd/busybox-image.js';
import { startContainerd, type PrivateContainerd } from '../containerd/containerd-harness.js';
import { TEST_HOOK_ENV } from '../fixtures/test-hooks.js';

export const RUNTIME = 'io.containerd.kata-ts.v2';
export const guestBuilt =
  existsSync(path.join(repoRoot, 'build/guest/initramfs.cpio.gz')) &&
  existsSync(path.join(repoRoot, 'build/guest/vmlinux'));

/** A Kata config for the built guest, virtio-fs shared fs, small memory. */
export function guestConfig(dir: string): string {
  const guest = path.join(repoRoot, 'build/guest');
  const params =
    'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';
  const text = readFileSync(exampleConfig, 'utf8')
    .replace(/^kernel = .*$/m, `kernel = "${guest}/vmlinux"`)
    .replace(/^image = .*$/m, `image = ""\ninitrd = "${guest}/initramfs.cpio.gz"`)
    .replace(/^kernel_params = .*$/m, `kernel_params = "${params}"`)
    .replace(/^default_memory = .*$/m, 'default_memory = 512')
    .replace(/^virtio_fs_daemon = .*$/m, 'virtio_fs_daemon = "/usr/lib/qemu/virtiofsd"')
    .replace(
      /^valid_virtio_fs_daemon_paths = .*$/m,
      'valid_virtio_fs_daemon_paths = ["/usr/lib/qemu/virtiofsd"]',
    );
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(file, text);
  return file;
}

/** A config for the lifecycle's test hooks: shared_fs none + force guest pull, paused-VM sized. */
export function hookConfig(dir: string): string {
  const guest = path.join(repoRoot, 'build/guest');
  const text = readFileSync(exampleConfig, 'utf8')
    .replace(/^kernel = .*$/m, `kernel = "${guest}/vmlinux"`)
    .replace(/^image = .*$/m, `image = ""\ninitrd = "${guest}/initramfs.cpio.gz"`)
    .replace(/^shared_fs = .*$/m, 'shared_fs = "none"')
    .replace(/^default_memory = .*$/m, 'default_memory = 256')
    .replace('[runtime]\n', '[runtime]\nexperimental_force_guest_pull = true\n');
  const file = path.join(dir, 'configuration.toml');
  writeFileSync(file, text);
  return file;
}

/** A spec file for `ctr run --config`: containerd's default spec, `args`, guest-pull annotation. */
export async function specFile(
  c: PrivateContainerd,
  id: string,
  args: string[],
  annotations: Record<string, string> = {},
): Promise<string> {
  const spec = JSON.parse((await c.ctr('oci', 'spec')).stdout) as Record<string, any>;
  spec.process.args = args;
  spec.annotations = { 'io.kubernetes.cri.image-name': BUSYBOX_IMAGE, ...annotations };
  spec.linux.cgroupsPath = `/${c.namespace}/${id}`;
  const file = path.join(c.dir, `${id}.json`);
  writeFileSync(file, JSON.stringify(spec));
  return file;
}

export interface ShimEnv {
  readonly dir: string;
  readonly containerd: PrivateContainerd;
}

/**
 * Writes `containerd-shim-kata-ts-v2` into `dir`: the sources run with tsx, `env` baked in. With a
 * lifecycle test hook in `env` (KATA_TS_TEST_AGENT, …) it runs the test entry point, which alone
 * reads them; otherwise the shim's own entry.
 */
export function writeShim(dir: string, env: Record<string, string>): void {
  const loader = path.join(repoRoot, 'node_modules/tsx/dist/loader.mjs');
  const exports = Object.entries(env)
    .map(([k, v]) => `export ${k}='${v}'\n`)
    .join('');
  const hooked = TEST_HOOK_ENV.some((k) => k in env);
  const entry = path.join(
    repoRoot,
    hooked ? '__test__/fixtures/kata-ts-test-shim.ts' : 'ts/shim/run.ts',
  );
  const script = `#!/bin/sh\n${exports}exec ${process.execPath} --import ${loader} ${entry} "$@"\n`;
  writeFileSync(path.join(dir, 'containerd-shim-kata-ts-v2'), script);
  chmodSync(path.join(dir, 'containerd-shim-kata-ts-v2'), 0o755);
}

/** Starts containerd with the kata-ts shim on its PATH and the busybox image imported. */
export async function containerdWithShim(
  t: ExecutionContext,
  env: Record<string, string>,
): Promise<ShimEnv> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeShim(dir, env);
  const containerd = await startContainerd({ shimDirs: [dir] });
  t.teardown(() => containerd.stop());
  await containerd.ctr('images', 'import', busyboxArchive());
  return { dir, containerd };
}

/** Task table of `ctr task ls` as id → status. */
export async function tasks(c: PrivateContainerd): Promise<Map<string, string>> {
  const { stdout } = await c.ctr('task', 'ls');
  const rows = stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/));
  return new Map(rows.map((r) => [r[0]!, r[2]!]));
}

export async function until(
  what: string,
  probe: () => Promise<boolean> | boolean,
  ms = 15_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
