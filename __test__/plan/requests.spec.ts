// The agent requests (reference §26): CreateSandboxRequest and CreateContainerRequest as the
// plan prints them (proto3 canonical JSON), and that they are valid messages of our schemas.
import { fromJson, toBinary } from '@bufbuild/protobuf';
import test from 'ava';
import { CreateContainerRequestSchema, CreateSandboxRequestSchema } from '../../ts/gen/agent_pb.js';
import { agentAnnotations } from '../../ts/plan/requests.js';
import { containerSpec, hostFacts, kataConfig, ociSpec, planOf } from './plan-builders.js';

test('CreateSandboxRequest: hostname, sandbox id, the virtio-fs share then the shm storage', (t) => {
  const p = planOf({})._unsafeUnwrap();
  t.deepEqual(p.createSandbox, {
    hostname: 'example-sandbox',
    sandboxId: 'sb',
    storages: [
      {
        driver: 'virtio-fs',
        source: 'kataShared',
        fstype: 'virtiofs',
        options: ['nodev'],
        mountPoint: '/run/kata-containers/shared/containers/',
      },
      {
        driver: 'ephemeral',
        source: 'shm',
        fstype: 'tmpfs',
        options: ['noexec', 'nosuid', 'nodev', 'mode=1777', 'size=67108864'],
        mountPoint: '/run/kata-containers/sandbox/shm',
      },
    ],
  });
});

test('CreateSandboxRequest without a shared fs holds only the shm storage', (t) => {
  const p = planOf({
    config: kataConfig({ sharedFs: 'none' }, { experimentalForceGuestPull: true }),
  })._unsafeUnwrap();
  t.deepEqual(
    (p.createSandbox as any).storages.map((s: any) => s.driver),
    ['ephemeral'],
  );
});

test('CreateSandboxRequest carries kernel modules with parameters and the guest hook path', (t) => {
  const config = kataConfig({ guestHookPath: '/usr/share/oci/hooks' });
  const p = planOf({
    config: {
      ...config,
      agent: {
        ...config.agent,
        kernelModules: ['e1000e InterruptThrottleRate=3000,3000,3000 EEE=1', 'i915'],
      },
    },
  })._unsafeUnwrap();
  t.like(p.createSandbox, {
    guestHookPath: '/usr/share/oci/hooks',
    kernelModules: [
      { name: 'e1000e', parameters: ['InterruptThrottleRate=3000,3000,3000', 'EEE=1'] },
      { name: 'i915' },
    ],
  });
});

test('agent annotations: container type and bundle path added, cc_init_data removed', (t) => {
  const out = agentAnnotations(
    { a: '1', 'io.katacontainers.config.hypervisor.cc_init_data': 'xx' },
    'pod_container',
    '/b/c1',
  );
  t.deepEqual(out, {
    a: '1',
    'io.katacontainers.pkg.oci.container_type': 'pod_container',
    'io.katacontainers.pkg.oci.bundle_path': '/b/c1',
  });
});

test('CreateContainerRequest: id, root path, annotations, resources as the agent must see them', (t) => {
  const spec = ociSpec((s) => {
    s.annotations = {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': 'sb',
      'io.katacontainers.config.hypervisor.cc_init_data': 'H4sI',
    };
    s.linux.resources = {
      cpu: { quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      memory: { limit: 1048576 },
      pids: { limit: 10 },
      devices: [{ allow: false, access: 'rwm' }],
      blockIO: { weight: 10 },
      network: { classID: 1 },
    };
    s.linux.seccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', errnoRet: 1 }],
    };
    s.process.user = { uid: 1000, gid: 1000, additionalGids: [1, 2] };
  });
  const c = planOf({ containers: [{ id: 'c1', spec }] })._unsafeUnwrap().containers[1]!;
  const req = c.createContainer as any;
  t.is(req.containerId, 'c1');
  t.is(req.execId, undefined);
  t.is(req.OCI.Root.Path, '/run/kata-containers/shared/containers/passthrough/c1/rootfs');
  t.deepEqual(req.OCI.Annotations, {
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.sandbox-id': 'sb',
    'io.katacontainers.pkg.oci.container_type': 'pod_container',
    'io.katacontainers.pkg.oci.bundle_path': '/bundles/c1',
  });
  t.deepEqual(req.OCI.Linux.Resources, {
    Memory: { Limit: '1048576' },
    CPU: { Quota: '50000', Period: '100000', Mems: '0' },
    Pids: { Limit: '10' },
  });
  t.deepEqual(req.OCI.Process.User, { UID: 1000, GID: 1000, AdditionalGids: [1, 2] });
  t.deepEqual(req.OCI.Linux.Seccomp.Syscalls, [
    { Names: ['read'], Action: 'SCMP_ACT_ALLOW', errnoret: 1 },
  ]);
});

test('disable_guest_seccomp = true leaves the profile out of CreateContainer, as runtime-rs', (t) => {
  const spec = ociSpec((s) => {
    s.linux.seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] };
  });
  const seccompOf = (disableGuestSeccomp: boolean) => {
    const config = kataConfig({}, { disableGuestSeccomp });
    const c = planOf({ config, containers: [{ id: 'c1', spec }] })._unsafeUnwrap().containers[1]!;
    return (c.createContainer as any).OCI.Linux.Seccomp;
  };
  t.is(seccompOf(true), undefined);
  t.is(seccompOf(false).DefaultAction, 'SCMP_ACT_ERRNO');
});

test('storages are rootfs first, then volumes in mount order', (t) => {
  const host = hostFacts({
    '/tmp/a': { kind: 'dir', mode: 0o40755, uid: 0, gid: 0, ino: 1, realpath: '/tmp/a' },
    '/tmp/b': { kind: 'dir', mode: 0o40755, uid: 0, gid: 0, ino: 2, realpath: '/tmp/b' },
  });
  const spec = containerSpec(
    [
      { destination: '/a', type: 'ephemeral', source: '/tmp/a' },
      { destination: '/b', type: 'ephemeral', source: '/tmp/b' },
    ],
    { 'io.kubernetes.cri.image-name': 'img' },
  );
  const config = kataConfig({}, { experimentalForceGuestPull: true });
  const req = planOf({ config, host, containers: [{ id: 'c1', spec }] })._unsafeUnwrap()
    .containers[1]!.createContainer as any;
  t.deepEqual(
    req.storages.map((s: any) => s.mountPoint),
    [
      '/run/kata-containers/c1/rootfs',
      '/run/kata-containers/sandbox/ephemeral/a',
      '/run/kata-containers/sandbox/ephemeral/b',
    ],
  );
});

test('the printed requests parse back into our schemas and encode', (t) => {
  const p = planOf({ containers: [{ id: 'c1', spec: containerSpec([]) }] })._unsafeUnwrap();
  const sandbox = fromJson(CreateSandboxRequestSchema, p.createSandbox);
  const container = fromJson(CreateContainerRequestSchema, p.containers[1]!.createContainer);
  t.is(sandbox.sandboxId, 'sb');
  t.is(container.OCI?.Root?.Path, '/run/kata-containers/shared/containers/passthrough/c1/rootfs');
  t.true(toBinary(CreateContainerRequestSchema, container).length > 0);
});

test('CreateContainerRequest: namespaces as the guest can have them (no network/cgroup/pid, no host paths)', (t) => {
  const spec = ociSpec((s) => {
    s.annotations = {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': 'sb',
    };
    s.linux.namespaces = [
      { type: 'pid', path: '/proc/42/ns/pid' },
      { type: 'ipc', path: '/proc/42/ns/ipc' },
      { type: 'uts', path: '/proc/42/ns/uts' },
      { type: 'mount' },
      { type: 'network', path: '/var/run/netns/cni-1' },
      { type: 'cgroup' },
    ];
  });
  const c = planOf({ containers: [{ id: 'c1', spec }] })._unsafeUnwrap().containers[1]!;
  t.deepEqual((c.createContainer as any).OCI.Linux.Namespaces, [
    { Type: 'ipc' },
    { Type: 'uts' },
    { Type: 'mount' },
  ]);
});

test('CreateContainerRequest: a CRI PodPID container (pid namespace path set) joins the pod pid namespace', (t) => {
  const withPid = (path: string | undefined, type = 'container') =>
    ociSpec((s) => {
      s.annotations = {
        'io.kubernetes.cri.container-type': type,
        'io.kubernetes.cri.sandbox-id': 'sb',
      };
      s.linux.namespaces = [
        { type: 'pid', ...(path !== undefined ? { path } : {}) },
        { type: 'ipc' },
      ];
    });
  const req = (spec: ReturnType<typeof ociSpec>) =>
    planOf({ containers: [{ id: 'c1', spec }] })._unsafeUnwrap().containers[1]!
      .createContainer as any;
  t.true(req(withPid('/proc/42/ns/pid')).sandboxPidns);
  t.falsy(req(withPid(undefined)).sandboxPidns);
  t.falsy(req(withPid('')).sandboxPidns);
});
