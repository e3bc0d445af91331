// Suites that need something this machine may lack (root, the built guest, QEMU, containerd)
// declare it once at the top of the file:
//
//   import { gated, needs } from '../harness/prereq.js';
//   const test = gated(needs.root(), needs.guest());
//
// When every need is met this is ava's `test`. Otherwise every test of the file is registered as
// a real ava skip whose title carries the reason (`… [skipped: needs root]`), and hooks are not
// run, so a missing prerequisite never shows up as a pass or as a failure. scripts/run-tests.sh
// lists the skipped titles and, with CI=true, fails when a promised suite was skipped.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type TestFn } from 'ava';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** A need: null when met, else why not (one short phrase). */
export type Need = string | null;

export const needs = {
  root: (): Need => (process.geteuid?.() === 0 ? null : 'needs root (euid 0)'),
  file: (file: string, what: string = file): Need =>
    existsSync(file) ? null : `${what} missing (${file})`,
  qemu: (): Need => needs.file('/usr/bin/qemu-system-x86_64', 'QEMU'),
  /** The guest kernel + initramfs `make guest` builds. */
  guest: (): Need =>
    needs.file(path.join(repoRoot, 'build/guest/vmlinux'), 'guest kernel (make guest)') ??
    needs.file(
      path.join(repoRoot, 'build/guest/initramfs.cpio.gz'),
      'guest initramfs (make guest)',
    ),
  containerd: (): Need =>
    needs.file('/usr/bin/containerd', 'containerd') ?? needs.file('/usr/bin/ctr', 'ctr'),
  useradd: (): Need =>
    ['/usr/sbin/useradd', '/sbin/useradd'].some((f) => existsSync(f)) ? null : 'useradd missing',
};

const HOOKS = new Set(['before', 'after', 'beforeEach', 'afterEach']);

/** ava's `test` when every need is met; else a stand-in that skips every test, naming why. */
export function gated(...required: readonly Need[]): TestFn {
  const reasons = required.filter((r): r is string => r !== null);
  if (reasons.length === 0) return test;
  return skipping(reasons.join('; '), []);
}

/** `test`, `test.serial`, `test.failing`, … as one callable: any chain ends in a skip or a no-op hook. */
function skipping(reason: string, chain: readonly string[]): TestFn {
  const call = (title: unknown, ...rest: unknown[]): unknown => {
    if (chain.includes('macro'))
      return (test.macro as (...a: unknown[]) => unknown)(title, ...rest);
    if (chain.some((c) => HOOKS.has(c))) return undefined;
    if (chain.includes('todo')) return test.todo(String(title));
    const name = typeof title === 'string' ? title : 'a macro test';
    return test.skip(`${name} [skipped: ${reason}]`, () => undefined);
  };
  return new Proxy(call, {
    get: (_target, prop) =>
      typeof prop === 'string' ? skipping(reason, [...chain, prop]) : undefined,
  }) as unknown as TestFn;
}
