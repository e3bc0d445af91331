// vectors.md §2.1 (kata-types k8s.rs special-dir predicates) and the copy allowlist of
// behaviour.md feature 4 (vectors §2.2, with our stricter kubelet-root anchoring).
import test from 'ava';
import {
  allowlistedVolume,
  isConfigmap,
  isDownwardApi,
  isEmptyDir,
  isProjected,
  isSecret,
  lexicalPrefix,
} from '../../ts/plan/k8s-paths.js';

const special: [string, (p: string) => boolean, string, boolean][] = [
  ['is_empty_dir', isEmptyDir, '/volumes/kubernetes.io~empty-dir/shm', true],
  ['is_empty_dir', isEmptyDir, '/volumes/kubernetes.io~empty-dir//shm', true],
  ['is_empty_dir', isEmptyDir, '/volumes/kubernetes.io~empty-dir-test/shm', false],
  ['is_empty_dir', isEmptyDir, '/volumes/kubernetes.io~empty-dir', false],
  ['is_empty_dir', isEmptyDir, 'kubernetes.io~empty-dir', false],
  ['is_empty_dir', isEmptyDir, '/kubernetes.io~empty-dir/shm', true],
  ['is_configmap', isConfigmap, '/volumes/kubernetes.io~configmap/cm', true],
  ['is_configmap', isConfigmap, '/volumes/kubernetes.io~configmap//cm', true],
  ['is_configmap', isConfigmap, '/volumes/kubernetes.io~configmap-test/cm', false],
  ['is_configmap', isConfigmap, '/volumes/kubernetes.io~configmap', false],
  ['is_secret', isSecret, '/volumes/kubernetes.io~secret/test-serect', true],
  ['is_secret', isSecret, '/volumes/kubernetes.io~secret//test-serect', true],
  ['is_secret', isSecret, '/volumes/kubernetes.io~secret-test/test-serect', false],
  ['is_secret', isSecret, '/volumes/kubernetes.io~secret', false],
  ['is_projected', isProjected, '/volumes/kubernetes.io~projected/foo', true],
  ['is_projected', isProjected, '/volumes/kubernetes.io~projected//foo', true],
  ['is_projected', isProjected, '/volumes/kubernetes.io~projected-test/foo', false],
  ['is_projected', isProjected, '/volumes/kubernetes.io~projected', false],
  ['is_downward_api', isDownwardApi, '/volumes/kubernetes.io~downward-api/foo', true],
  ['is_downward_api', isDownwardApi, '/volumes/kubernetes.io~downward-api//foo', true],
  ['is_downward_api', isDownwardApi, '/volumes/kubernetes.io~downward-api-test/foo', false],
  ['is_downward_api', isDownwardApi, '/volumes/kubernetes.io~downward-api', false],
];
for (const [name, fn, p, want] of special) {
  test(`${name}(${p}) is ${want}`, (t) => t.is(fn(p), want));
}

const KL = ['/var/lib/kubelet'];
const allow: [string, string, boolean][] = [
  [
    'a configmap volume',
    '/var/lib/kubelet/pods/1000/volumes/kubernetes.io~configmap/kube-configmap-0s2no',
    true,
  ],
  [
    'a secret volume',
    '/var/lib/kubelet/pods/1000/volumes/kubernetes.io~secret/kube-secret-2s2np',
    true,
  ],
  [
    'a projected volume',
    '/var/lib/kubelet/pods/0b8e-uid/volumes/kubernetes.io~projected/kube-api-access-8s2nl',
    true,
  ],
  [
    'a downward-api volume',
    '/var/lib/kubelet/pods/0b8e-uid/volumes/kubernetes.io~downward-api/downward-api-xxxx',
    true,
  ],
  [
    'a directory below a volume',
    '/var/lib/kubelet/pods/u/volumes/kubernetes.io~configmap/cm/..data',
    true,
  ],
  [
    '(unlike the reference) a projected dir outside <root>/pods',
    '/var/lib/kubelet/1000/u/volumes/kubernetes.io~projected/x',
    false,
  ],
  [
    '(unlike the reference) a secret dir outside the kubelet root',
    '/srv/x/kubernetes.io~secret/s',
    false,
  ],
  ['an emptyDir', '/var/lib/kubelet/pods/u/volumes/kubernetes.io~empty-dir/e', false],
  ['a plugin look-alike', '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret-x/s', false],
  ['the plugin dir itself', '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret', false],
  ['a kubelet-root look-alike', '/var/lib/kubelet-x/pods/u/volumes/kubernetes.io~secret/s', false],
  [
    'a path with ..',
    '/var/lib/kubelet/pods/u/volumes/kubernetes.io~secret/s/../../../../../../etc',
    false,
  ],
];
for (const [title, p, want] of allow) {
  test(`copy allowlist: ${title} → ${want}`, (t) => t.is(allowlistedVolume(p, KL) !== null, want));
}

test('the allowlist accepts the canonical kubelet root too', (t) => {
  t.like(
    allowlistedVolume('/data/kubelet/pods/u/volumes/kubernetes.io~secret/s/x', [
      '/var/lib/kubelet',
      '/data/kubelet',
    ]),
    {
      uid: 'u',
      plugin: 'kubernetes.io~secret',
      name: 's',
      dir: '/data/kubelet/pods/u/volumes/kubernetes.io~secret/s',
    },
  );
});

test('the lexical prefix of a path stops at its first ..', (t) => {
  t.is(lexicalPrefix('/a/b/../c'), '/a/b');
  t.is(lexicalPrefix('/a//b/'), '/a/b/');
  t.is(lexicalPrefix('/../x'), '/');
});
