// Where a shim listens, and which containers share one. containerd 1.6 computes shim sockets as
// `unix:///run/containerd/s/<sha256(<containerd address>/<namespace>/<id>)>`
// (runtime/v2/shim/util_unix.go SocketAddress); a pod's containers share the sandbox's shim,
// grouped as Kata and runc do by the CRI sandbox-id annotation.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { z } from 'zod';
import { MAX_SPEC_FILE_BYTES } from '../input/limits.js';
import { parseJsonText } from '../input/json-text.js';
import { readInputFile, type ReadInputErrorKind } from '../input/read-input-file.js';

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

/** Why a bundle's config.json gave no annotations; `what` never quotes the file. */
export interface BundleSpecError {
  readonly kind: ReadInputErrorKind | 'invalid';
  readonly path: string;
  readonly what: string;
}

/** Only the part of the OCI spec the shim reads before the lifecycle validates the rest. */
const AnnotationsSchema = z.object({
  annotations: z.record(z.string(), z.string()).optional(),
});

/**
 * The bundle's annotations (empty when config.json has none). The bundle is hostile input: a
 * FIFO, device or symlink at config.json is refused without being opened (a FIFO used to hang
 * `start`), and an oversized file is refused at MAX_SPEC_FILE_BYTES.
 */
export function bundleAnnotations(bundle: string): Result<Record<string, string>, BundleSpecError> {
  const file = path.join(bundle, 'config.json');
  const text = readInputFile(file, {
    maxBytes: MAX_SPEC_FILE_BYTES,
    limitName: 'MAX_SPEC_FILE_BYTES',
    noFollow: true,
  });
  if (text.isErr()) return err(text.error);
  const json = parseJsonText(text.value);
  if (json.isErr()) return err({ kind: 'invalid', path: file, what: json.error.message });
  const spec = AnnotationsSchema.safeParse(json.value);
  if (!spec.success)
    return err({ kind: 'invalid', path: file, what: 'annotations: expected an object of strings' });
  return ok(spec.data.annotations ?? {});
}

/** The id of the pod sandbox a container belongs to: itself unless CRI says it is a pod member. */
export function sandboxIdOf(id: string, annotations: Readonly<Record<string, string>>): string {
  const sandbox = annotations[CRI_SANDBOX_ID];
  return annotations[CRI_CONTAINER_TYPE] === 'container' && sandbox ? sandbox : id;
}

/** The host-wide shim's files, in the state root (KATA_TS_STATE_ROOT, else /run/kata-ts). */
export interface DaemonPaths {
  /** What containerd dials for every pod: the front (`kata-ts-shim-front`). */
  readonly socket: string;
  /** flock'ed by the one front of the host. */
  readonly lock: string;
  /** The node daemon's private socket; only the front and `start`/`delete` use it. */
  readonly daemonSocket: string;
}

/** The shim files under `root`. Files, not dirs: the state root's dirs are sandboxes. */
export function daemonPaths(root: string): DaemonPaths {
  return {
    socket: path.join(root, 'shim.sock'),
    lock: path.join(root, 'shim.lock'),
    daemonSocket: path.join(root, 'shim-daemon.sock'),
  };
}

/** The private service the daemon serves besides containerd's Task service. */
export const DAEMON_SERVICE = 'kata-ts.shim.v1.Daemon';

/** What `start` tells the daemon about a container before containerd dials (JSON payload). */
export const RegisterSchema = z.strictObject({
  id: z.string().min(1).max(1024),
  sandboxId: z.string().min(1).max(1024),
  namespace: z.string().min(1).max(1024),
  ttrpcAddress: z.string().max(4096),
  bundle: z.string().min(1).max(4096),
  debug: z.boolean(),
  /** The Kata configuration this pod's `start` was given (each runtime handler its own). */
  configPath: z.string().min(1).max(4096),
});
export type Register = z.infer<typeof RegisterSchema>;

/** `delete` asks the daemon to let go of a sandbox it may still hold (JSON payload). */
export const ReleaseSchema = z.strictObject({
  sandboxId: z.string().min(1).max(1024),
  namespace: z.string().min(1).max(1024),
});
export type Release = z.infer<typeof ReleaseSchema>;

/** The daemon's Release answer for a sandbox it does not hold (`delete` then cleans up itself). */
export const NOT_HELD = 'not held by the kata-ts shim daemon';

/** The Kata configuration: KATA_TS_CONFIG, else KATA_CONF_FILE, else /etc/kata-ts/configuration.toml. */
export function configPathFrom(env: NodeJS.ProcessEnv): string {
  return env['KATA_TS_CONFIG'] ?? env['KATA_CONF_FILE'] ?? '/etc/kata-ts/configuration.toml';
}
