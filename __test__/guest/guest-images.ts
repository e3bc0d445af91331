// The guest images `make guest` builds in build/guest (ts/guest/build-guest.sh), and the helper
// every booted-guest suite uses to run once per agent.
//
// Run a guest test on both agents (ours and upstream kata-agent):
//
//   import { forEachGuestImage } from '../guest/guest-images.js';
//   forEachGuestImage('CreateSandbox sets the hostname', async (t, img) => {
//     // img.name: 'ours' | 'kata-agent'; img.image: { kernel, initrd } for bootAgentGuest;
//     // img.kernel / img.initrd: paths for a Kata configuration.toml (lifecycle suites).
//   }, { timeout: 240_000, needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')] });
//
// It registers one serial ava test per image in GUEST_IMAGES, titled `[ours] …` and
// `[kata-agent] …`. An image that is not built (or not selected) is a loud skip through
// harness/prereq.ts's `gated` (`… [skipped: build/guest/initramfs-kata.cpio.gz missing: …]`), never
// a pass; root and QEMU are always required. scripts/run-tests.sh lists every skip and, with
// CI=true, fails a promised suite (guest, kata-agent, …) that skipped any test, so CI runs both.
// KATA_TS_GUEST_IMAGES=ours (comma-separated names) restricts a local run to some images; the
// others are skipped, loudly. KATA_TS_GUEST_KERNEL=debian|minimal boots them on
// build/guest/vmlinux-<kernel> instead of the default kernel (build/guest/vmlinux), to compare. For a one-off, `guestTest(img)` is the gated `test` of one image.
//
// What differs between the agents is decided by kata-agent (the judge of what a request means);
// each known difference is named where a test allows for it, and listed in the README.
//
// Also here: DEBIAN_IMAGE / MINIMAL_IMAGE (the two kernels with our initramfs, for the suites and
// the benchmark that compare kernels) and KATA_IMAGE; each `missing…` says why an image is absent.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecutionContext, TestFn } from 'ava';
import type { GuestImage } from '../../ts/guest/guest-shell.js';
import { gated, needs, type Need } from '../harness/prereq.js';

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

/** Why `img` is not selected by KATA_TS_GUEST_IMAGES, or null. */
function unselected(img: NamedGuestImage): Need {
  const sel = process.env['KATA_TS_GUEST_IMAGES'];
  if (sel === undefined || sel === '') return null;
  const names = sel.split(',').map((s) => s.trim());
  return names.includes(img.name) ? null : `image ${img.name} not in KATA_TS_GUEST_IMAGES=${sel}`;
}

/** ava's `test` for one image, or a loud skip naming what is missing. */
export function guestTest(img: NamedGuestImage, ...extra: readonly Need[]): TestFn {
  return gated(needs.root(), needs.qemu(), unselected(img), img.missing(), ...extra);
}

export interface ForEachOptions {
  /** More prerequisites (rootfs image, containerd, …), each a loud skip when unmet. */
  readonly needs?: readonly Need[];
  /** ava's t.timeout for each test, ms. */
  readonly timeout?: number;
  /** Images to run on (default GUEST_IMAGES). */
  readonly images?: readonly NamedGuestImage[];
}

/** Registers `[<image>] title` as one serial ava test per guest image. */
export function forEachGuestImage(
  title: string,
  fn: (t: ExecutionContext, img: NamedGuestImage) => Promise<void>,
  opts: ForEachOptions = {},
): void {
  for (const img of opts.images ?? GUEST_IMAGES) {
    guestTest(img, ...(opts.needs ?? [])).serial(`[${img.name}] ${title}`, async (t) => {
      if (opts.timeout !== undefined) t.timeout(opts.timeout);
      await fn(t, img);
    });
  }
}
