// The guest images `make guest` builds in build/guest (ts/guest/build-guest.sh), by name, for the
// suites and the benchmark that pick one explicitly: Debian's kernel (the peer) and the minimal
// kernel with the same initramfs of our agent, and the kata-agent initramfs (upstream kata-agent
// behind our serial relay). The default image (build/guest/vmlinux) is what every other guest
// suite boots. Each `missing…` says why an image is absent, for a loud skip.
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
