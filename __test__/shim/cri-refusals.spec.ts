// What a VM sandbox refuses when it reads a bundle (ts/spec/vm-refusals.ts), as containerd's CRI
// writes such specs: a pod sandbox asking HostPID / HostIPC / HostNetwork has no pid / ipc /
// network entry in linux.namespaces; a Bidirectional mount carries "rshared". Plain `ctr run`
// bundles (no CRI annotations) and specs without a namespace list are never refused. The shim
// answers these at Create as INVALID_ARGUMENT with the same lines (the lifecycle's `input` kind).
import { readFileSync } from 'node:fs';
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { parseOciSpec } from '../../ts/spec/oci-spec.js';

const SOURCE = '/b/config.json';
const ALL = ['pid', 'ipc', 'uts', 'mount', 'network'];
const CRI_SANDBOX = {
  'io.kubernetes.cri.container-type': 'sandbox',
  'io.kubernetes.cri.sandbox-id': 'sb',
};

const spec = (
  namespaces: string[] | undefined,
  annotations: Record<string, string> = CRI_SANDBOX,
  mounts: unknown[] = [],
) =>
  JSON.stringify({
    ociVersion: '1.0.2',
    root: { path: 'rootfs' },
    annotations,
    mounts,
    linux: namespaces === undefined ? {} : { namespaces: namespaces.map((type) => ({ type })) },
  });

const lines = (text: string): string[] => {
  const r = parseOciSpec(text, SOURCE);
  return r.isOk() ? [] : formatPlanError(r.error);
};

const without = (...types: string[]) => ALL.filter((n) => !types.includes(n));

for (const [ns, field] of [
  ['network', 'HostNetwork'],
  ['pid', 'HostPID'],
  ['ipc', 'HostIPC'],
] as const) {
  test(`a CRI pod sandbox without a ${ns} namespace (${field}) is refused, naming the field`, (t) => {
    t.deepEqual(lines(spec(without(ns))), [
      `kata-ts: ${SOURCE}: linux.namespaces: ${field}=true is not supported: a pod in a VM cannot share the host's ${ns} namespace (the sandbox spec has no "${ns}" namespace)`,
    ]);
  });
}

test('a pod asking for all three host namespaces gets one line each', (t) => {
  const got = lines(spec(without('pid', 'ipc', 'network')));
  t.is(got.length, 3);
  t.regex(got.join('\n'), /HostPID=true.*\n.*HostIPC=true.*\n.*HostNetwork=true/);
});

test('a CRI pod sandbox with its own namespaces (netns path from CNI) is accepted', (t) => {
  const text = JSON.stringify({
    ...JSON.parse(spec(ALL)),
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'network', path: '/var/run/netns/cni-1234' },
      ],
    },
  });
  t.deepEqual(lines(text), []);
});

test('a plain ctr run bundle with --net-host (no CRI annotations) is not refused', (t) => {
  t.deepEqual(lines(spec(without('network'), {})), []);
});

test('a CRI container (not the sandbox) is judged by its sandbox, not refused itself', (t) => {
  const container = {
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.sandbox-id': 'sb',
  };
  t.deepEqual(lines(spec(without('network', 'pid'), container)), []);
});

test('a spec without a namespace list is not judged', (t) => {
  t.deepEqual(lines(spec(undefined)), []);
});

test('the example bundles still read', (t) => {
  for (const f of ['examples/bundle/config.json', 'examples/container-bundle/config.json'])
    t.true(parseOciSpec(readFileSync(f, 'utf8'), f).isOk(), f);
});

test('a mount with rshared (Bidirectional) or shared propagation is refused, naming the mount', (t) => {
  const mounts = [
    { destination: '/ok', type: 'bind', source: '/tmp', options: ['rbind', 'rslave'] },
    { destination: '/bi', type: 'bind', source: '/tmp', options: ['rbind', 'rshared', 'rw'] },
    { destination: '/sh', type: 'bind', source: '/tmp', options: ['bind', 'shared'] },
  ];
  t.deepEqual(lines(spec(ALL, CRI_SANDBOX, mounts)), [
    `kata-ts: ${SOURCE}: mounts[1].options: mount "/bi": "rshared" (bidirectional) propagation is not supported: mounts made in the VM cannot propagate back to the host`,
    `kata-ts: ${SOURCE}: mounts[2].options: mount "/sh": "shared" (bidirectional) propagation is not supported: mounts made in the VM cannot propagate back to the host`,
  ]);
});

test('a hostile mount destination is escaped and clipped in the refusal', (t) => {
  const mounts = [{ destination: `/x\u001b[31m${'a'.repeat(5000)}`, options: ['rshared'] }];
  const [line] = lines(spec(ALL, CRI_SANDBOX, mounts));
  t.truthy(line);
  t.false(line!.includes('\u001b'));
  t.true(line!.length < 1000);
});
