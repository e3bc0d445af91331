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
import type { ExecutionContext, TestFn } from 'ava';
import { gated, needs, type Need } from '../harness/prereq.js';
import { GUEST_IMAGES, type NamedGuestImage } from './guest-image-paths.js';

export * from './guest-image-paths.js';

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
