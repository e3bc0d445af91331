// `kata-ts plan` as a stable contract: JSON on stdout and exit 0, or `kata-ts: <where>: <what>`
// on stderr, nothing on stdout and exit 2.
import { gzipSync } from 'node:zlib';
import test from 'ava';
import { exampleBundle, exampleConfig, HOST_FACTS, runCli, Scratch } from './cli-harness.js';

function scratch(t: { teardown: (fn: () => void) => void }): Scratch {
  const s = new Scratch();
  t.teardown(() => s.remove());
  return s;
}

async function planJson(t: any, args: string[]) {
  const s = scratch(t);
  const facts = s.file('facts.json', HOST_FACTS);
  const r = await runCli(['plan', '--host-facts', facts, ...args]);
  t.is(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function planError(t: any, args: string[]) {
  const s = scratch(t);
  const facts = s.file('facts.json', HOST_FACTS);
  const r = await runCli(['plan', '--host-facts', facts, ...args]);
  t.is(r.code, 2, r.stdout);
  t.is(r.stdout, '');
  const lines = r.stderr.trimEnd().split('\n');
  for (const line of lines) t.regex(line, /^kata-ts: /);
  return lines;
}

test('the bundled example plans with the documented top-level shape', async (t) => {
  const p = await planJson(t, [
    '--config',
    exampleConfig,
    '--sandbox',
    `example-sandbox=${exampleBundle}`,
  ]);
  t.deepEqual(Object.keys(p).slice(0, 12), [
    'sandboxId',
    'rootlessDir',
    'hostDirs',
    'vcpus',
    'memoryMiB',
    'maxMemoryMiB',
    'kernelParams',
    'cgroups',
    'ports',
    'coldplugDevices',
    'initdata',
    'containers',
  ]);
  t.is(p.sandboxId, 'example-sandbox');
  t.is(p.rootlessDir, null);
  t.deepEqual(p.hostDirs, {
    vm: '/run/kata/example-sandbox',
    jailerRoot: '/run/kata/example-sandbox/root',
    sharedSandbox: '/run/kata-containers/shared/sandboxes/example-sandbox',
    sharedRw: '/run/kata-containers/shared/sandboxes/example-sandbox/rw',
    sharedRo: '/run/kata-containers/shared/sandboxes/example-sandbox/ro',
    initdata: '/run/kata-containers/shared/initdata/example-sandbox',
    persist: '/run/kata/example-sandbox',
    directVolumes: '/run/kata-containers/shared/direct-volumes',
  });
  t.deepEqual(p.vcpus, { boot: 1, max: 8, exact: '1/1' });
  t.is(p.memoryMiB, 2048);
  t.is(p.kernelParams, '');
  t.like(p.cgroups, {
    driver: 'cgroupfs',
    path: 'kata-ts-example/sandbox',
    overheadPath: null,
    vcpuPlacement: 'none',
  });
  // The example's default_bridges = 1 (Kata's template value) cold-plugs one PCI bridge.
  t.deepEqual(
    p.ports.map((x: any) => x.id),
    ['pci-bridge-0'],
  );
  t.deepEqual(p.coldplugDevices, []);
  t.is(p.initdata, null);
  t.is(p.containers.length, 1);
  t.like(p.containers[0], { id: 'example-sandbox', vcpusAfter: 2, blockDevices: [] });
});

test('containers are added in command-line order; 0.5 + ten 0.05-CPU containers need exactly 1 vCPU', async (t) => {
  const s = scratch(t);
  const config = s.config([['hypervisor.qemu', 'default_vcpus', '0.5']]);
  const sandbox = s.bundle('sb', (spec) => delete spec.linux.resources.cpu);
  const containers = Array.from({ length: 10 }, (_, i) => {
    const dir = s.bundle(`c${i}`, (spec) => {
      spec.linux.resources.cpu = { quota: 5000, period: 100000 };
      spec.annotations = {
        'io.kubernetes.cri.container-type': 'container',
        'io.kubernetes.cri.sandbox-id': 'sb',
      };
    });
    return ['--container', `c${i}=${dir}`];
  });
  const p = await planJson(t, [
    '--config',
    config,
    '--sandbox',
    `sb=${sandbox}`,
    ...containers.flat(),
  ]);
  t.deepEqual(
    p.containers.map((c: any) => c.id),
    ['sb', ...Array.from({ length: 10 }, (_, i) => `c${i}`)],
  );
  t.deepEqual(
    p.containers.map((c: any) => c.vcpusAfter),
    Array(11).fill(1),
  );
  t.is(p.containers[1].type, 'pod_container');
});

test('a systemd cgroupsPath selects the systemd driver', async (t) => {
  const s = scratch(t);
  const sandbox = s.bundle(
    'sb',
    (spec) => (spec.linux.cgroupsPath = 'kubepods-besteffort.slice:cri-containerd:sb'),
  );
  const config = s.config([['runtime', 'sandbox_cgroup_only', 'false']]);
  const p = await planJson(t, ['--config', config, '--sandbox', `sb=${sandbox}`]);
  t.like(p.cgroups, {
    driver: 'systemd',
    overheadPath: 'kata-overhead.slice:runtime-rs:sb',
    vcpuPlacement: 'process',
  });
  t.is(p.cgroups.systemd.unit, 'cri-containerd-sb.scope');
});

test('pcie_root_port creates root ports on pcie.0 with explicit addresses', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'pcie_root_port', '2'],
    ['hypervisor.qemu', 'default_bridges', '0'],
  ]);
  const p = await planJson(t, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
  t.deepEqual(
    p.ports.map((x: any) => `${x.id}:${x.type}:${x.bus}`),
    ['rp0:root-port:pcie.0', 'rp1:root-port:pcie.0'],
  );
  t.true(p.ports.every((x: any) => typeof x.addr === 'string'));
});

test('pcie_switch_port creates a switch with downstream ports (the reference cannot)', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'pcie_switch_port', '2'],
    ['hypervisor.qemu', 'default_bridges', '0'],
  ]);
  const p = await planJson(t, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
  t.deepEqual(
    p.ports.map((x: any) => `${x.id}:${x.type}:${x.bus}`),
    [
      'rp1:root-port:pcie.0',
      'swup1:switch-upstream:rp1',
      'swdp1:switch-downstream:swup1',
      'swdp2:switch-downstream:swup1',
    ],
  );
});

test('a device hot-plugged behind the switch gets the PCI path through it', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'block_device_driver', '"virtio-blk-pci"'],
    ['hypervisor.qemu', 'pcie_switch_port', '2'],
  ]);
  const sandbox = s.bundle(
    'sb',
    (spec) => (spec.linux.devices = [{ path: '/dev/xvda', type: 'b', major: 8, minor: 16 }]),
  );
  const facts = s.file(
    'facts-dev.json',
    JSON.stringify({
      ...JSON.parse(HOST_FACTS),
      blockDevices: { '8:16': { path: '/dev/sdb', readOnly: false } },
    }),
  );
  const r = await runCli([
    'plan',
    '--host-facts',
    facts,
    '--config',
    config,
    '--sandbox',
    `sb=${sandbox}`,
  ]);
  t.is(r.code, 0, r.stderr);
  t.is(JSON.parse(r.stdout).containers[0].blockDevices[0].pciPath, '10/00/01/00');
});

const INITDATA = 'algorithm = "sha256"\nversion = "0.1.0"\n\n[data]\nkey = "value"\n';

test('initdata from the config is cold-plugged read-only with the configured driver and AIO', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'initdata', JSON.stringify(INITDATA)],
    ['hypervisor.qemu', 'block_device_aio', '"native"'],
  ]);
  const p = await planJson(t, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
  t.like(p.initdata, {
    digest: 'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294=',
    driver: 'virtio-scsi',
  });
  t.is(p.initdata.imageBytes % 512, 0);
  t.is(p.coldplugDevices.length, 1);
  t.like(p.coldplugDevices[0], {
    agentDriver: 'scsi',
    readOnly: true,
    aio: 'native',
    directIo: true,
    scsiAddr: '0:0',
    pathOnHost: '/run/kata-containers/shared/initdata/sb/initdata.image',
  });
});

test('initdata from the cc_init_data annotation is decoded when annotations allow it', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'enable_annotations', '["cc_init_data"]'],
    ['hypervisor.qemu', 'block_device_driver', '"virtio-blk-pci"'],
  ]);
  const sandbox = s.bundle('sb', (spec) => {
    spec.annotations['io.katacontainers.config.hypervisor.cc_init_data'] =
      gzipSync(INITDATA).toString('base64');
  });
  const p = await planJson(t, ['--config', config, '--sandbox', `sb=${sandbox}`]);
  t.is(p.initdata.digest, 'dngZjtaC3ku+OZuaFxD15g52h/338mtwMHtHNzEI294=');
  t.like(p.coldplugDevices[0], { agentDriver: 'blk', pciPath: '08', virtPath: '/dev/vda' });
});

test('bad initdata in the annotation is an error naming the annotation', async (t) => {
  const s = scratch(t);
  const config = s.config([['hypervisor.qemu', 'enable_annotations', '["cc_init_data"]']]);
  const sandbox = s.bundle('sb', (spec) => {
    spec.annotations['io.katacontainers.config.hypervisor.cc_init_data'] =
      'This is not valid base64!';
  });
  const [line] = await planError(t, ['--config', config, '--sandbox', `sb=${sandbox}`]);
  t.regex(line!, /io\.katacontainers\.config\.hypervisor\.cc_init_data: .*base64 decode/);
});

const badConfigs: [string, [string, string, string], RegExp][] = [
  [
    'an unsupported AIO mode',
    ['hypervisor.qemu', 'block_device_aio', '"iouring"'],
    /hypervisor\.qemu\.block_device_aio: .*iouring is unsupported block device AIO mode\./,
  ],
  [
    'an unknown block driver',
    ['hypervisor.qemu', 'block_device_driver', '"foo"'],
    /hypervisor\.qemu\.block_device_driver: .*foo is unsupported block device type\./,
  ],
  [
    'logical sector larger than physical',
    [
      'hypervisor.qemu',
      'block_device_logical_sector_size',
      '4096\nblock_device_physical_sector_size = 512',
    ],
    /invalid sector sizes: logical \(4096\) must not be larger than physical \(512\)/,
  ],
  [
    'a sector size that is not a power of two',
    ['hypervisor.qemu', 'block_device_logical_sector_size', '1000'],
    /block_device_logical_sector_size/,
  ],
  [
    'a negative root port count',
    ['hypervisor.qemu', 'pcie_root_port', '-1'],
    /hypervisor\.qemu\.pcie_root_port/,
  ],
  [
    'too many root ports',
    ['hypervisor.qemu', 'pcie_root_port', '40'],
    /hypervisor\.qemu\.pcie_root_port/,
  ],
  [
    'root ports and switch ports at once (Kata forbids it)',
    ['hypervisor.qemu', 'pcie_root_port', '1\npcie_switch_port = 1'],
    /Root Port and Switch Port set at the same time is forbidden/,
  ],
  [
    'default_vcpus as an exponent',
    ['hypervisor.qemu', 'default_vcpus', '1e3'],
    /hypervisor\.qemu\.default_vcpus/,
  ],
];
for (const [title, edit, want] of badConfigs) {
  test(`${title} exits 2 with one line naming the key`, async (t) => {
    const s = scratch(t);
    const config = s.config([edit]);
    const lines = await planError(t, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
    t.true(
      lines.some((l) => want.test(l) && l.startsWith(`kata-ts: ${config}: `)),
      lines.join('\n'),
    );
  });
}

test('malformed TOML exits 2 naming the file and position', async (t) => {
  const s = scratch(t);
  const config = s.file('broken.toml', '[hypervisor.qemu]\ndefault_vcpus = = 1\n');
  const [line] = await planError(t, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
  t.true(line!.startsWith(`kata-ts: ${config}: `), line);
});

test('a missing config file exits 2 naming it', async (t) => {
  const [line] = await planError(t, [
    '--config',
    '/nonexistent/configuration.toml',
    '--sandbox',
    `sb=${exampleBundle}`,
  ]);
  t.is(line, 'kata-ts: /nonexistent/configuration.toml: --config: cannot read: no such file');
});

test('a bundle without config.json exits 2 naming it', async (t) => {
  const s = scratch(t);
  const lines = await planError(t, ['--config', exampleConfig, '--sandbox', `sb=${s.dir}`]);
  t.regex(lines[0]!, /no config\.json in bundle/);
});

test('malformed config.json exits 2 with its position', async (t) => {
  const s = scratch(t);
  s.file('config.json', '{"ociVersion": "1.1.0",');
  const lines = await planError(t, ['--config', exampleConfig, '--sandbox', `sb=${s.dir}`]);
  t.regex(lines[0]!, /config\.json: .*invalid JSON/);
});

test('a cgroupsPath escaping with .. exits 2 naming linux.cgroupsPath', async (t) => {
  const s = scratch(t);
  const sandbox = s.bundle('sb', (spec) => (spec.linux.cgroupsPath = '/kubepods/../../escape'));
  const [line] = await planError(t, ['--config', exampleConfig, '--sandbox', `sb=${sandbox}`]);
  t.regex(line!, /config\.json: linux\.cgroupsPath: /);
});

test('an unusable sandbox id exits 2', async (t) => {
  const [line] = await planError(t, [
    '--config',
    exampleConfig,
    '--sandbox',
    `../evil=${exampleBundle}`,
  ]);
  t.regex(line!, /invalid id "\.\.\/evil"/);
});

test('a malformed --sandbox argument exits 2', async (t) => {
  const [line] = await planError(t, ['--config', exampleConfig, '--sandbox', exampleBundle]);
  t.regex(line!, /^kata-ts: plan: --sandbox: expected ID=BUNDLE_DIR/);
});

test('a missing required option exits 2 in the kata-ts: shape', async (t) => {
  const r = await runCli(['plan', '--sandbox', `sb=${exampleBundle}`]);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.regex(r.stderr, /^kata-ts: required option '--config <file>' not specified/);
});

test('hot-plugging a virtio-blk-pci device with no ports configured is refused naming pcie_root_port', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'block_device_driver', '"virtio-blk-pci"'],
    ['hypervisor.qemu', 'default_bridges', '0'], // no bridge either (the example has 1)
  ]);
  const sandbox = s.bundle(
    'sb',
    (spec) => (spec.linux.devices = [{ path: '/dev/xvda', type: 'b', major: 8, minor: 0 }]),
  );
  const facts = s.file(
    'facts-dev.json',
    JSON.stringify({
      ...JSON.parse(HOST_FACTS),
      blockDevices: { '8:0': { path: '/dev/sda', readOnly: false } },
    }),
  );
  const r = await runCli([
    'plan',
    '--host-facts',
    facts,
    '--config',
    config,
    '--sandbox',
    `sb=${sandbox}`,
  ]);
  t.is(r.code, 2);
  t.regex(r.stderr, /linux\.devices\[0\].*pcie_root_port/);
});

test('a container block device is hot-plugged to a root port with a PCI path', async (t) => {
  const s = scratch(t);
  const config = s.config([
    ['hypervisor.qemu', 'block_device_driver', '"virtio-blk-pci"'],
    ['hypervisor.qemu', 'pcie_root_port', '2'],
  ]);
  const sandbox = s.bundle(
    'sb',
    (spec) => (spec.linux.devices = [{ path: '/dev/xvda', type: 'b', major: 8, minor: 16 }]),
  );
  const facts = s.file(
    'facts-dev.json',
    JSON.stringify({
      ...JSON.parse(HOST_FACTS),
      blockDevices: { '8:16': { path: '/dev/sdb', readOnly: true } },
    }),
  );
  const r = await runCli([
    'plan',
    '--host-facts',
    facts,
    '--config',
    config,
    '--sandbox',
    `sb=${sandbox}`,
  ]);
  t.is(r.code, 0, r.stderr);
  const dev = JSON.parse(r.stdout).containers[0].blockDevices[0];
  t.like(dev, {
    pathOnHost: '/dev/sdb',
    readOnly: true,
    agentDriver: 'blk',
    pciPath: '10/00',
    hotplug: true,
    aio: 'io_uring',
  });
});

test('a bad container cpuset exits 2 with one line naming the bundle and field', async (t) => {
  const s = scratch(t);
  const sandbox = s.bundle('sb', (spec) => (spec.linux.resources.cpu = { cpus: '3-1' }));
  const lines = await planError(t, ['--config', exampleConfig, '--sandbox', `sb=${sandbox}`]);
  t.is(lines.length, 1);
  t.regex(lines[0]!, /sb\/config\.json: linux\.resources\.cpu\.cpus: invalid cpuset "3-1"/);
});

test('the sandbox cgroup cpuset is the canonical union of the containers', async (t) => {
  const s = scratch(t);
  const sandbox = s.bundle('sb', (spec) => (spec.linux.resources.cpu = { cpus: '0-3' }));
  const c1 = s.bundle('c1', (spec) => (spec.linux.resources.cpu = { cpus: '2-5', mems: '0' }));
  const p = await planJson(t, [
    '--config',
    exampleConfig,
    '--sandbox',
    `sb=${sandbox}`,
    '--container',
    `c1=${c1}`,
  ]);
  t.is(p.cgroups.cpuset, '0-5');
  t.is(p.cgroups.mems, '0');
  t.deepEqual(
    p.containers.map((c: any) => c.vcpusAfter),
    [4, 6],
  );
});

test('the example sandbox and example container print the agent requests and copies', async (t) => {
  const container = exampleBundle.replace(/bundle$/, 'container-bundle');
  const p = await planJson(t, [
    '--config',
    exampleConfig,
    '--sandbox',
    `example-sandbox=${exampleBundle}`,
    '--container',
    `example-container=${container}`,
  ]);
  t.like(p.createSandbox, { sandboxId: 'example-sandbox', hostname: 'example-sandbox' });
  t.deepEqual(
    p.createSandbox.storages.map((s: any) => s.driver),
    ['virtio-fs', 'ephemeral'],
  );
  const [sb, c] = p.containers;
  t.deepEqual(sb.copies, []);
  t.like(sb.createContainer, {
    containerId: 'example-sandbox',
    OCI: {
      Root: { Path: '/run/kata-containers/shared/containers/passthrough/example-sandbox/rootfs' },
    },
  });
  t.like(c.rootfs, {
    kind: 'guest-pull',
    guestPath: '/run/kata-containers/example-container/rootfs',
  });
  t.like(c.createContainer.storages[0], {
    driver: 'image_guest_pull',
    source: 'docker.io/library/busybox:latest',
    fstype: 'overlay',
  });
  t.is(
    c.createContainer.OCI.Annotations['io.katacontainers.pkg.oci.container_type'],
    'pod_container',
  );
  t.is(c.createContainer.OCI.Annotations['io.katacontainers.pkg.oci.bundle_path'], container);
});
