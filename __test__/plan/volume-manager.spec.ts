// vectors.md §2.8 (VolumeManager scenarios, "intended" column) and the multi-container
// configmap scenarios: a true refcount per canonical source and every destination kept.
import test from 'ava';
import { VolumeManager } from '../../ts/plan/volume-manager.js';
import { randomBytes } from 'node:crypto';
import { copyGuestPath, sequentialHex } from '../../ts/plan/volumes-paths.js';

const P = /^\/run\/kata-containers\/shared\/containers\/([A-Za-z0-9._-]+)-([0-9a-f]{16})-cfg$/;
const CM = '/kl/cm1';

function manager() {
  return { vm: new VolumeManager(), random: sequentialHex() };
}

test('V1: the first container gets P(A) and the entry holds ref 1 with {A}', (t) => {
  const { vm, random } = manager();
  const a = vm.acquire(CM, 'A', '/etc/cfg', random)._unsafeUnwrap();
  t.regex(a.guestPath, P);
  t.is(P.exec(a.guestPath)![1], 'A');
  t.true(a.first);
  t.like(vm.get(CM), { refCount: 1, destinations: [{ containerId: 'A', guestPath: a.guestPath }] });
});

test('V2: a second container gets its own path and both destinations are kept (ref 2)', (t) => {
  const { vm, random } = manager();
  const a = vm.acquire(CM, 'A', '/etc/cfg', random)._unsafeUnwrap();
  const b = vm.acquire(CM, 'B', '/etc/cfg', random)._unsafeUnwrap();
  t.not(a.guestPath, b.guestPath);
  t.false(b.first);
  t.deepEqual(vm.get(CM)?.destinations, [
    { containerId: 'A', guestPath: a.guestPath },
    { containerId: 'B', guestPath: b.guestPath },
  ]);
  t.is(vm.get(CM)?.refCount, 2);
});

test('V3: releasing the first of two containers keeps the watcher (false) and B destination', (t) => {
  const { vm, random } = manager();
  vm.acquire(CM, 'A', '/etc/cfg', random);
  const b = vm.acquire(CM, 'B', '/etc/cfg', random)._unsafeUnwrap();
  t.false(vm.release(CM, 'A'));
  t.deepEqual(vm.get(CM)?.destinations, [{ containerId: 'B', guestPath: b.guestPath }]);
  t.is(vm.get(CM)?.refCount, 1);
});

test('V4: releasing the last container stops the watcher (true) and drops the entry', (t) => {
  const { vm, random } = manager();
  vm.acquire(CM, 'A', '/etc/cfg', random);
  vm.acquire(CM, 'B', '/etc/cfg', random);
  t.false(vm.release(CM, 'A'));
  t.true(vm.release(CM, 'B'));
  t.is(vm.get(CM), undefined);
  t.false(vm.release(CM, 'B'), 'a further release finds nothing');
});

test('V5: releasing an unknown source is false', (t) => {
  t.false(new VolumeManager().release('/kl/unknown', 'A'));
});

test('V6: release canonicalizes the source before the lookup', (t) => {
  const { vm, random } = manager();
  vm.acquire(CM, 'A', '/etc/cfg', random);
  t.true(vm.release('/kl/../kl/cm1', 'A'));
});

test('V6: an injected canonicalizer (realpath facts) is used for acquire and release', (t) => {
  const real: Record<string, string> = { '/link/cm1': CM };
  const vm = new VolumeManager((p) => real[p] ?? p);
  const random = sequentialHex();
  vm.acquire('/link/cm1', 'A', '/etc/cfg', random);
  vm.acquire(CM, 'B', '/etc/cfg', random);
  t.is(vm.get(CM)?.refCount, 2);
  t.false(vm.release('/link/cm1', 'A'));
  t.true(vm.release(CM, 'B'));
});

test('V7: releasing a container that never acquired the source changes nothing', (t) => {
  const { vm, random } = manager();
  vm.acquire(CM, 'A', '/etc/cfg', random);
  t.false(vm.release(CM, 'C'));
  t.is(vm.get(CM)?.refCount, 1);
});

test('the same container mounting a source twice holds two references', (t) => {
  const { vm, random } = manager();
  vm.acquire(CM, 'A', '/etc/cfg', random);
  vm.acquire(CM, 'A', '/etc/other', random);
  t.is(vm.get(CM)?.refCount, 2);
  t.false(vm.release(CM, 'A'));
  t.true(vm.release(CM, 'A'));
});

test('a destination of / has no name and is refused', (t) => {
  const { vm, random } = manager();
  t.is(vm.acquire(CM, 'A', '/', random)._unsafeUnwrapErr(), 'get mount destination failed');
  t.is(vm.get(CM), undefined);
});

test('two containers share a configmap, release one, release the other', (t) => {
  const { vm, random } = manager();
  const a = vm.acquire(CM, 'A', '/etc/cfg', random)._unsafeUnwrap();
  const b = vm.acquire(CM, 'B', '/etc/cfg', random)._unsafeUnwrap();
  t.true(a.first, 'the first reference starts the watcher');
  t.false(b.first, 'the second reference reuses it (fan-out)');
  t.false(vm.release(CM, 'A'), 'the watcher keeps running for B');
  t.deepEqual(
    vm.volumes().map((v) => [v.refCount, v.destinations.map((d) => d.containerId)]),
    [[1, ['B']]],
  );
  t.true(vm.release(CM, 'B'), 'the last release stops the watcher');
  t.deepEqual(vm.volumes(), []);
});

// vectors §2.5: guest path generators.
test('generate_copy_file_guest_path("sandbox-id", "/etc/resolv.conf") is <share>/sandbox-id-<16 hex>-resolv.conf', (t) => {
  const p = copyGuestPath('sandbox-id', '/etc/resolv.conf', (n) =>
    randomBytes(n).toString('hex'),
  )._unsafeUnwrap();
  t.regex(p, /^\/run\/kata-containers\/shared\/containers\/sandbox-id-[0-9a-f]{16}-resolv\.conf$/);
});

test('generate_copy_file_guest_path with destination / fails with the reference error', (t) => {
  t.is(
    copyGuestPath('c1', '/', sequentialHex())._unsafeUnwrapErr(),
    'get mount destination failed',
  );
});

test('a container id that would leave the share dir is refused', (t) => {
  t.true(copyGuestPath('../x', '/etc/cfg', sequentialHex()).isErr());
});
