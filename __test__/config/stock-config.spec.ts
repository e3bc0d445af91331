// Kata's stock runtime-rs QEMU configuration (../shared/peers/kata-config), filled by
// scripts/fill-stock-config.sh with upstream's own Makefile rule and only its paths changed for
// this machine, parses with no warning and plans a sandbox unchanged. Skipped loudly without
// ../shared (a user's clone); with CI=true scripts/run-tests.sh fails the skip (suite stock-config).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import { EXAMPLE_HOST_FACTS } from '../../ts/plan/host-facts.js';
import { plan } from '../../ts/plan/plan.js';
import { parseOciSpec } from '../../ts/spec/oci-spec.js';
import { gated, needs } from '../harness/prereq.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const PEER = path.join(repoRoot, '../shared/peers/kata-config');
const TEMPLATE = path.join(PEER, 'configuration-qemu-runtime-rs.toml.in');
const SCRIPT = path.join(repoRoot, 'scripts/fill-stock-config.sh');
const test = gated(
  needs.file(TEMPLATE, 'stock Kata configuration (../shared/peers/kata-config)'),
  needs.file('/usr/bin/make', 'GNU make'),
);
/** The keys whose lines the script rewrites: paths only (`image` becomes `initrd`). */
const PATH_KEYS = [
  'path',
  'valid_hypervisor_paths',
  'kernel',
  'image',
  'virtio_fs_daemon',
  'valid_virtio_fs_daemon_paths',
];

function fill(t: ExecutionContext, guest: 'ours' | 'kata' = 'ours'): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-stock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'configuration.toml');
  execFileSync('bash', [SCRIPT, out, '--guest', guest], { stdio: 'pipe' });
  return readFileSync(out, 'utf8');
}

test('the filled stock config differs from the template only in placeholders and path lines', (t) => {
  const template = readFileSync(TEMPLATE, 'utf8').split('\n');
  const filled = fill(t).split('\n');
  t.is(filled.length, template.length, 'line for line');
  t.false(/@[A-Z_0-9]+@/.test(filled.join('\n')), 'no placeholder left');
  const changed = template.flatMap((line, i) =>
    line === filled[i] || /@[A-Z_0-9]+@/.test(line) ? [] : [`${line} → ${filled[i]}`],
  );
  t.deepEqual(changed, [], "every line without a placeholder is the template's");
  // The placeholder lines that are paths point at this machine; `image` became `initrd`.
  const pathLines = template.flatMap((line, i) =>
    PATH_KEYS.some((k) => line.startsWith(`${k} = `)) ? [filled[i]] : [],
  );
  const qemu = execFileSync('bash', ['-c', 'command -v qemu-system-x86_64'], {
    encoding: 'utf8',
  }).trim();
  t.deepEqual(pathLines.length, PATH_KEYS.length);
  t.true(pathLines.includes(`path = "${qemu}"`));
  t.true(pathLines.includes(`valid_hypervisor_paths = ["${qemu}"]`));
  t.true(pathLines.some((l) => /^virtio_fs_daemon = "\/.*virtiofsd"$/.test(l!)));
  t.true(filled.includes('default_bridges = 1'), '@DEFBRIDGES@ filled from runtime-rs.Makefile');
  t.true(filled.includes('block_device_driver = "virtio-scsi"'));
  t.true(filled.includes('machine_type = "q35"'));
  t.true(filled.includes(`kernel = "${path.join(repoRoot, 'build/guest/vmlinux')}"`));
  t.true(filled.includes(`initrd = "${path.join(repoRoot, 'build/guest/initramfs.cpio.gz')}"`));
});

test('the filled stock config parses with no warning and keeps its values', (t) => {
  const parsed = parseKataConfig(fill(t), 'stock.toml');
  if (parsed.isErr()) return t.fail(parsed.error.problems.map((p) => p.message).join('\n'));
  const { config, warnings } = parsed.value;
  t.deepEqual(warnings, []);
  const h = config.hypervisor;
  t.is(h.defaultBridges, 1);
  t.is(h.pcieRootPort, 0);
  t.is(h.blockDeviceDriver, 'virtio-scsi');
  t.is(h.sharedFs, 'virtio-fs');
  t.is(h.defaultMemoryMiB, 2048);
  t.is(h.cpuFeatures, 'pmu=off');
  t.true(config.runtime.staticSandboxResourceMgmt);
  t.true(config.runtime.sandboxCgroupOnly);
});

test('the kata-agent variant boots initramfs-kata.cpio.gz, nothing else changes', (t) => {
  const ours = fill(t, 'ours').split('\n');
  const kata = fill(t, 'kata').split('\n');
  const diff = ours.flatMap((l, i) => (l === kata[i] ? [] : [kata[i]]));
  t.deepEqual(diff, [`initrd = "${path.join(repoRoot, 'build/guest/initramfs-kata.cpio.gz')}"`]);
});

test('the filled stock config plans the example sandbox unchanged', (t) => {
  const { config } = parseKataConfig(fill(t), 'stock.toml')._unsafeUnwrap();
  const bundleDir = path.join(repoRoot, 'examples/bundle');
  const spec = parseOciSpec(
    readFileSync(path.join(bundleDir, 'config.json'), 'utf8'),
    'config.json',
  );
  const p = plan({
    config,
    configSource: 'stock.toml',
    sandbox: { id: 'sb', bundleDir, spec: spec._unsafeUnwrap() },
    containers: [],
    host: EXAMPLE_HOST_FACTS,
  });
  if (p.isErr()) return t.fail(p.error.problems.map((x) => x.message).join('\n'));
  t.deepEqual(p.value.warnings, []);
  t.deepEqual(
    p.value.ports.map((x) => [x.id, x.type, x.addr]),
    [['pci-bridge-0', 'pci-bridge', '0x1e']],
  );
});

test('without the peer tree the script says SKIPPED and exits 3, writing nothing', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-stock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'c.toml');
  const r = spawnSync('bash', [SCRIPT, out], {
    env: { ...process.env, KATA_CONFIG_PEER: path.join(dir, 'absent') },
    encoding: 'utf8',
  });
  t.is(r.status, 3);
  t.regex(r.stdout, /SKIPPED: no stock Kata configuration/);
  t.throws(() => readFileSync(out));
});
