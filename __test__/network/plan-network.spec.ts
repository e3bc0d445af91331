// The pod network planner (pure) and the QEMU arguments it leads to: one row per behaviour.
import test from 'ava';
import {
  planNetwork,
  netnsPathOf,
  type NetworkFacts,
  type VethFact,
} from '../../ts/plan/network.js';
import { netdevArgs } from '../../ts/qemu/netdev.js';
import { parseOciSpec } from '../../ts/spec/oci-spec.js';

const veth = (o: Partial<VethFact> = {}): VethFact => ({
  name: 'eth0',
  mac: '0a:58:0a:f4:00:05',
  mtu: 1450,
  addresses: [{ address: '10.244.0.5', prefixLen: 24 }],
  tapName: 'tap0_kata',
  queues: 1,
  vhostFds: 0,
  ...o,
});

const facts = (o: Partial<NetworkFacts> = {}): NetworkFacts => ({
  veths: [veth()],
  routes: [
    {
      destination: null,
      gateway: '10.244.0.1',
      source: null,
      device: 'eth0',
      scope: 0,
      ipv6: false,
    },
    {
      destination: { address: '10.244.0.0', prefixLen: 24 },
      gateway: null,
      source: '10.244.0.5',
      device: 'eth0',
      scope: 253,
      ipv6: false,
    },
    {
      destination: null,
      gateway: '192.168.1.1',
      source: null,
      device: 'eth9',
      scope: 0,
      ipv6: false,
    },
  ],
  neighbours: [
    { address: '10.244.0.1', mac: '0a:58:0a:f4:00:01', device: 'eth0', state: 0x80 },
    { address: '10.244.0.7', mac: '0a:58:0a:f4:00:07', device: 'eth0', state: 0x02 },
  ],
  ...o,
});

test('one veth: net0 on function 0 of the network slot with the veth MAC; no vhost under TCG', (t) => {
  const plan = planNetwork(facts({ veths: [veth({ vhostFds: 1 })] }), {
    accel: 'tcg',
  })._unsafeUnwrap();
  t.deepEqual(plan.nics, [
    {
      id: 'net0',
      tapName: 'tap0_kata',
      vethName: 'eth0',
      mac: '0a:58:0a:f4:00:05',
      mtu: 1450,
      queues: 1,
      vhost: false,
      bus: 'pcie.0',
      addr: '0x05.0',
      multifunction: false,
    },
  ]);
  t.deepEqual(plan.interfaces, [
    {
      name: 'eth0',
      hwAddr: '0a:58:0a:f4:00:05',
      mtu: 1450,
      IPAddresses: [{ family: 0, address: '10.244.0.5', mask: '24' }],
      type: 'veth',
    },
  ]);
});

test('vhost-net under KVM only when every queue got a vhost fd', (t) => {
  const kvm = (v: VethFact) => planNetwork(facts({ veths: [v] }), { accel: 'kvm' })._unsafeUnwrap();
  t.true(kvm(veth({ vhostFds: 1 })).nics[0]!.vhost);
  t.false(kvm(veth({ vhostFds: 0 })).nics[0]!.vhost);
});

test('routes: only the pod devices, device routes before gateway routes', (t) => {
  const plan = planNetwork(facts(), { accel: 'tcg' })._unsafeUnwrap();
  t.deepEqual(
    plan.routes.map((r) => [r.dest, r.gateway, r.device]),
    [
      ['10.244.0.0/24', '', 'eth0'],
      ['', '10.244.0.1', 'eth0'],
    ],
  );
});

test('neighbours: permanent ones on pod devices only (as Kata)', (t) => {
  const plan = planNetwork(facts(), { accel: 'tcg' })._unsafeUnwrap();
  t.deepEqual(
    plan.neighbours.map((n) => n.toIPAddress.address),
    ['10.244.0.1'],
  );
});

test('two veths: functions 0 and 1, multifunction on function 0', (t) => {
  const plan = planNetwork(
    facts({
      veths: [veth(), veth({ name: 'net1', mac: '0a:58:0a:f4:01:05', tapName: 'tap1_kata' })],
    }),
    { accel: 'tcg' },
  )._unsafeUnwrap();
  t.deepEqual(
    plan.nics.map((n) => [n.id, n.addr, n.multifunction]),
    [
      ['net0', '0x05.0', true],
      ['net1', '0x05.1', false],
    ],
  );
});

test('every bad fact is reported with its field', (t) => {
  const e = planNetwork(
    facts({
      veths: [
        veth({ mac: 'zz', mtu: 10, name: 'a/b', addresses: [{ address: 'x', prefixLen: 8 }] }),
      ],
    }),
    { accel: 'tcg' },
  )._unsafeUnwrapErr();
  t.deepEqual(
    e.problems.map((p) => p.field),
    ['veths[0].name', 'veths[0].mac', 'veths[0].mtu', 'veths[0].addresses[0]'],
  );
});

test('more veths than the network slot has functions are refused', (t) => {
  const many = Array.from({ length: 9 }, (_, i) =>
    veth({
      name: `eth${i}`,
      tapName: `tap${i}_kata`,
      mac: `0a:58:0a:f4:00:${(16 + i).toString(16)}`,
    }),
  );
  const e = planNetwork(facts({ veths: many }), { accel: 'tcg' })._unsafeUnwrapErr();
  t.regex(e.problems[0]!.message, /at most 8 interfaces/);
});

test('netdev arguments: tap fd, virtio-net-pci with MAC, address, MTU and no option ROM', (t) => {
  const plan = planNetwork(facts(), { accel: 'tcg' })._unsafeUnwrap();
  t.deepEqual(netdevArgs(plan.nics, [{ tap: [3], vhost: [] }])._unsafeUnwrap(), [
    '-netdev',
    'tap,id=net0,fd=3',
    '-device',
    'virtio-net-pci,id=virtio-net0,netdev=net0,mac=0a:58:0a:f4:00:05,bus=pcie.0,addr=0x05.0,host_mtu=1450,romfile=',
  ]);
});

test('netdev arguments: multi-queue and vhost fds', (t) => {
  const plan = planNetwork(facts({ veths: [veth({ queues: 2, vhostFds: 2 })] }), {
    accel: 'kvm',
  })._unsafeUnwrap();
  const args = netdevArgs(plan.nics, [{ tap: [3, 4], vhost: [5, 6] }])._unsafeUnwrap();
  t.is(args[1], 'tap,id=net0,fds=3:4,vhost=on,vhostfds=5:6');
  t.regex(args[3]!, /,mq=on,vectors=6,/);
  t.true(netdevArgs(plan.nics, [{ tap: [3], vhost: [] }]).isErr(), 'one fd per queue');
});

test('the netns path comes from the sandbox spec network namespace', (t) => {
  const spec = (namespaces: unknown) =>
    parseOciSpec(
      JSON.stringify({ ociVersion: '1.0.2', root: { path: 'rootfs' }, linux: { namespaces } }),
      'config.json',
    )._unsafeUnwrap();
  t.is(
    netnsPathOf(spec([{ type: 'network', path: '/var/run/netns/cni-1' }])),
    '/var/run/netns/cni-1',
  );
  t.is(netnsPathOf(spec([{ type: 'network' }])), null);
  t.is(netnsPathOf(spec([{ type: 'pid' }])), null);
});
