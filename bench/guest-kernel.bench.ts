// guest.boot_to_agent.minimal_kernel: ms from QEMU spawn until our agent (PID 1 in the TCG guest)
// answers health Check SERVING over the virtio-serial port, booting the minimal kernel
// (scripts/build-kernel.sh: Kata's fragments, drivers built in) against Debian's generic kernel
// (the peer), with the same initramfs, the same plan and the same host side, alternating in one
// run; median of BOOTS each. ratio = debian / minimal (goal ≥ 3, issue 21). Needs `make guest`
// with ../shared; without the minimal kernel the figure is reported as not measured.
import { loadavg } from 'node:os';
import path from 'node:path';
import { bootAgentGuest } from '../ts/guest/boot-agent-guest.js';
import type { GuestImage } from '../ts/guest/guest-shell.js';
import {
  DEBIAN_IMAGE,
  MINIMAL_IMAGE,
  missingDebianImage,
  missingMinimalImage,
} from '../__test__/guest/guest-image-paths.js';
import { podFixture } from '../__test__/guest/planned-pod.js';
import { lowerIsBetter, type Metrics } from './metric.js';

const BOOTS = 3;
const KEY = 'guest.boot_to_agent.minimal_kernel';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function bootMs(image: GuestImage): Promise<number> {
  const f = podFixture('virtio-blk-pci');
  try {
    const booted = await bootAgentGuest({
      plan: f.plan,
      config: f.hv,
      image,
      runDir: path.join(f.dir, 'run'),
      bootTimeoutMs: 180_000,
    });
    if (booted.isErr()) throw new Error(`boot ${image.kernel}: ${booted.error.message}`);
    await booted.value.stop();
    return booted.value.bootMs;
  } finally {
    f.cleanup();
  }
}

export async function run(): Promise<Metrics> {
  const missing = missingMinimalImage() ?? missingDebianImage();
  if (missing !== null) return { [KEY]: lowerIsBetter(0, 0, 'ms', `not measured: ${missing}`) };
  const minimal: number[] = [];
  const debian: number[] = [];
  const loadBefore = loadavg()[0]!;
  for (let k = 0; k < BOOTS; k++) {
    minimal.push(await bootMs(MINIMAL_IMAGE));
    debian.push(await bootMs(DEBIAN_IMAGE));
  }
  const load = `load average ${loadBefore.toFixed(2)} → ${loadavg()[0]!.toFixed(2)}`;
  const runs = `minimal ${minimal.map((m) => m.toFixed(0)).join('/')} ms, debian ${debian.map((m) => m.toFixed(0)).join('/')} ms`;
  const note = `TCG (-cpu max), spawn → health SERVING, same initramfs (our agent), median of ${BOOTS} alternating boots each; ${runs}; ${load}; goal ratio ≥ 3`;
  return { [KEY]: lowerIsBetter(median(minimal), median(debian), 'ms', note) };
}
