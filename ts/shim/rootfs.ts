// The container rootfs on the host. containerd's rootfs mounts (an overlay of the snapshot) go to
// the lifecycle as `<bundle>/rootfs-mounts.json`; it mounts them at `<bundle>/rootfs` and binds
// that into the sandbox's shared dir (`<sharedRw>/passthrough/<cid>/rootfs`). `delete` unmounts
// what a dead shim may have left there, found through /proc/self/mountinfo.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { err, ok, type Result } from 'neverthrow';
import type { Mount } from '../gen/containerd/types/mount_pb.js';

function run(cmd: string, args: string[]): Promise<Result<void, string>> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: 30_000 }, (e, _out, stderr) =>
      resolve(e ? err(`${cmd} ${args.join(' ')}: ${stderr.trim() || e.message}`) : ok(undefined)),
    );
  });
}

/** Mount points (unescaped) from /proc/self/mountinfo, in mount order. */
export function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) =>
      l
        .split(' ')[4]!
        .replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    );
}

/** containerd's Mounts as `rootfs-mounts.json` holds them. */
export function rootfsMounts(
  mounts: readonly Mount[],
): { type: string; source: string; target?: string; options: string[] }[] {
  return mounts.map((m) => ({
    type: m.type,
    source: m.source,
    ...(m.target ? { target: m.target } : {}),
    options: [...m.options],
  }));
}

/** Unmounts every mount stacked at `target` (none: ok). */
export async function unmountRootfs(target: string): Promise<Result<void, string>> {
  for (let i = 0; i < 8 && mountPoints().includes(target); i++) {
    const r = await run('umount', [target]);
    if (r.isErr()) {
      // Busy (a process of a dead sandbox still holds it): detach it rather than leave it.
      const lazy = await run('umount', ['-l', target]);
      if (lazy.isErr()) return lazy;
    }
  }
  return mountPoints().includes(target) ? err(`${target} is still mounted`) : ok(undefined);
}

/** Shared-dir binds of a container's rootfs (`…/passthrough/<cid>/rootfs`), for cleanup. */
export function sharedRootfsBinds(containerId: string): string[] {
  return mountPoints().filter((p) => p.endsWith(`/passthrough/${containerId}/rootfs`));
}
