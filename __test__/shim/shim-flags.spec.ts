// The shim's command line and addressing, as containerd 1.6 drives them.
import test from 'ava';
import { sandboxIdOf, socketAddress } from '../../ts/shim/address.js';
import { parseShimFlags } from '../../ts/shim/flags.js';

const common = [
  '-namespace',
  'k8s.io',
  '-address',
  '/run/containerd/containerd.sock',
  '-publish-binary',
  '/usr/bin/containerd',
  '-id',
  'c1',
];

test('start flags as containerd passes them, TTRPC_ADDRESS from the environment, bundle = cwd', (t) => {
  const f = parseShimFlags(
    [...common, 'start'],
    { TTRPC_ADDRESS: '/run/containerd/containerd.sock.ttrpc' },
    '/b/c1',
  )._unsafeUnwrap();
  t.deepEqual(f, {
    namespace: 'k8s.io',
    address: '/run/containerd/containerd.sock',
    publishBinary: '/usr/bin/containerd',
    id: 'c1',
    bundle: '/b/c1',
    debug: false,
    ttrpcAddress: '/run/containerd/containerd.sock.ttrpc',
    action: 'start',
  });
});

test('delete takes -bundle; -debug and -name=value forms are accepted', (t) => {
  const f = parseShimFlags(
    ['-debug', '--namespace=ns', '-id', 'x', '-bundle', '/b/x', 'delete'],
    {},
    '/',
  )._unsafeUnwrap();
  t.like(f, {
    namespace: 'ns',
    id: 'x',
    bundle: '/b/x',
    debug: true,
    action: 'delete',
    ttrpcAddress: '',
  });
});

test('unknown flags, missing values, ids and actions are refused with Go flag wording', (t) => {
  const rows: [string[], string][] = [
    [[...common, '-systemd-cgroup', 'start'], 'flag provided but not defined: -systemd-cgroup'],
    [['-namespace'], 'flag needs an argument: -namespace'],
    [['-namespace', 'ns', 'start'], '-id is required'],
    [[...common, 'boot'], 'unknown action "boot": want start or delete'],
    [common, 'unknown action "": want start or delete'],
  ];
  for (const [argv, message] of rows)
    t.is(parseShimFlags(argv, {}, '/')._unsafeUnwrapErr(), message);
});

test('the socket address is containerd 1.6 SocketAddress: sha256 of <address>/<namespace>/<id>', (t) => {
  // printf %s /run/containerd/containerd.sock/default/c1 | sha256sum
  t.is(
    socketAddress('/run/containerd/containerd.sock', 'default', 'c1'),
    'unix:///run/containerd/s/d25aa4ef11a84e954e74a5bcff06557d0b6ea8d0c00243896f29826694bbd888',
  );
  t.regex(socketAddress('/a.sock', 'ns', 'id'), /^unix:\/\/\/run\/containerd\/s\/[0-9a-f]{64}$/);
});

test('CRI pod members group under their sandbox id; everything else is its own sandbox', (t) => {
  const member = {
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.sandbox-id': 'pod-1',
  };
  t.is(sandboxIdOf('c2', member), 'pod-1');
  t.is(sandboxIdOf('pod-1', { ...member, 'io.kubernetes.cri.container-type': 'sandbox' }), 'pod-1');
  t.is(sandboxIdOf('solo', {}), 'solo');
});
