// Where a shim listens, and which containers share one. containerd 1.6 computes shim sockets as
// `unix:///run/containerd/s/<sha256(<containerd address>/<namespace>/<id>)>`
// (runtime/v2/shim/util_unix.go SocketAddress); a pod's containers share the sandbox's shim,
// grouped as Kata and runc do by the CRI sandbox-id annotation.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export const SOCKET_DIR = '/run/containerd/s';

/** CRI annotations (containerd pkg/cri/annotations). */
export const CRI_CONTAINER_TYPE = 'io.kubernetes.cri.container-type';
export const CRI_SANDBOX_ID = 'io.kubernetes.cri.sandbox-id';

/** The shim socket address for a grouping key. */
export function socketAddress(containerdAddress: string, namespace: string, key: string): string {
  const digest = createHash('sha256')
    .update(path.join(containerdAddress, namespace, key))
    .digest('hex');
  return `unix://${SOCKET_DIR}/${digest}`;
}

/** The bundle's annotations (empty when config.json has none or cannot be read). */
export function bundleAnnotations(bundle: string): Record<string, string> {
  try {
    const spec = JSON.parse(readFileSync(path.join(bundle, 'config.json'), 'utf8')) as {
      annotations?: Record<string, string>;
    };
    return spec.annotations ?? {};
  } catch {
    return {};
  }
}

/** The id of the pod sandbox a container belongs to: itself unless CRI says it is a pod member. */
export function sandboxIdOf(id: string, annotations: Readonly<Record<string, string>>): string {
  const sandbox = annotations[CRI_SANDBOX_ID];
  return annotations[CRI_CONTAINER_TYPE] === 'container' && sandbox ? sandbox : id;
}
