// The busybox OCI image archive for containerd tests and benchmarks, built once by
// scripts/build-busybox-oci.sh from busybox-static and cached in build/containerd.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The name the archive's index.json gives the image (io.containerd.image.name). */
export const BUSYBOX_IMAGE = 'docker.io/kata-ts/busybox:latest';

const SCRIPT = fileURLToPath(new URL('../../scripts/build-busybox-oci.sh', import.meta.url));
const ARCHIVE = fileURLToPath(new URL('../../build/containerd/busybox-oci.tar', import.meta.url));

/** Path of the image archive, (re)built if missing or older than the script or /bin/busybox. */
export function busyboxArchive(): string {
  execFileSync('bash', [SCRIPT, ARCHIVE, BUSYBOX_IMAGE], { stdio: ['ignore', 'ignore', 'pipe'] });
  return ARCHIVE;
}
