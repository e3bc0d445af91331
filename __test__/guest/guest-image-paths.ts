// The guest images by path (no ava: the benchmarks import this); guest-images.ts re-exports it
// and adds forEachGuestImage for the suites.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GuestImage } from '../../ts/guest/guest-shell.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const GUEST_DIR = path.join(repoRoot, 'build/guest');
const file = (name: string) => path.join(GUEST_DIR, name);

/** The peers' tree (../shared): the minimal kernel's fragments and kata-agent come from there. */
const SHARED_PEERS = path.join(repoRoot, '../shared/peers');

export const DEBIAN_IMAGE: GuestImage = {
  kernel: file('vmlinux-debian'),
  initrd: file('initramfs.cpio.gz'),
};
export const MINIMAL_IMAGE: GuestImage = {
  kernel: file('vmlinux-minimal'),
  initrd: file('initramfs.cpio.gz'),
};
/** kata-agent's initramfs on the default kernel. */
export const KATA_IMAGE: GuestImage = {
  kernel: file('vmlinux'),
  initrd: file('initramfs-kata.cpio.gz'),
};

function missing(image: GuestImage, peer: string | null, make: string): string | null {
  for (const f of [image.kernel, image.initrd]) {
    if (existsSync(f)) continue;
    const why =
      peer === null || existsSync(path.join(SHARED_PEERS, peer))
        ? `run \`${make}\``
        : `../shared/peers/${peer} is absent (a clone without the peers' tree)`;
    return `${path.relative(repoRoot, f)} missing: ${why}`;
  }
  return null;
}

/** Why the minimal-kernel image cannot boot, or null. */
export const missingMinimalImage = () =>
  missing(MINIMAL_IMAGE, 'kata-kernel-config', 'make kernel guest');
/** Why the kata-agent image cannot boot, or null. */
export const missingKataImage = () => missing(KATA_IMAGE, 'kata-agent', 'make kata-agent guest');
/** Why the Debian-kernel image cannot boot, or null. */
export const missingDebianImage = () => missing(DEBIAN_IMAGE, null, 'make guest');

/** The agent a guest image runs: `ours` (kata-ts-agent as PID 1) or upstream `kata-agent`. */
export type AgentName = 'ours' | 'kata-agent';

export interface NamedGuestImage {
  readonly name: AgentName;
  /** Kernel + initramfs, as bootAgentGuest and launchVm take them. */
  readonly image: GuestImage;
  readonly kernel: string;
  readonly initrd: string;
  /** Why this image cannot boot here, or null. */
  readonly missing: () => string | null;
}

/** The kernel the per-agent images boot: build/guest/vmlinux, or vmlinux-$KATA_TS_GUEST_KERNEL. */
const suiteKernel = (): string => {
  const k = process.env['KATA_TS_GUEST_KERNEL'];
  return k === undefined || k === '' ? file('vmlinux') : file(`vmlinux-${k}`);
};

/** Our agent's initramfs on the suites' kernel (build/guest/vmlinux by default). */
export const OURS_IMAGE: GuestImage = {
  kernel: suiteKernel(),
  initrd: file('initramfs.cpio.gz'),
};
/** Why our agent's image cannot boot, or null. */
export const missingOursImage = () => missing(OURS_IMAGE, null, 'make guest');

const named = (name: AgentName, image: GuestImage, why: () => string | null): NamedGuestImage => ({
  name,
  image,
  kernel: image.kernel,
  initrd: image.initrd,
  missing: why,
});

/** Every agent the guest suites run against, on the default kernel. */
export const GUEST_IMAGES: readonly NamedGuestImage[] = [
  named('ours', OURS_IMAGE, missingOursImage),
  named('kata-agent', { ...KATA_IMAGE, kernel: suiteKernel() }, () =>
    missing({ ...KATA_IMAGE, kernel: suiteKernel() }, 'kata-agent', 'make kata-agent guest'),
  ),
];
