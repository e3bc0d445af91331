// shm and memory-backed volumes (reference §11, vectors §3): the sandbox's shm size and Storage,
// container `/dev/shm` bound to it, and tmpfs-backed (ephemeral) volumes. Unlike the reference, a
// known size of the host tmpfs (the emptyDir sizeLimit kubelet mounted it with) is passed as `size=`.
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import type { Problem } from '../errors.js';
import { joinGuest } from '../paths.js';
import type { OciMount, OciSpec } from '../spec/oci-spec.js';
import { pathFact, type HostFacts } from './host-facts.js';
import { isEmptyDir } from './k8s-paths.js';
import type { StorageInit } from './volumes-storage.js';
import { GUEST_EPHEMERAL_DIR, GUEST_SHM_DIR, mountProblem } from './volumes-paths.js';

export const SHM_DEVICE = '/dev/shm';
/** runtime-rs `DEFAULT_SHM_SIZE` = 65536 × 1024. */
export const DEFAULT_SHM_SIZE_BYTES = 67108864;
export const EPHEMERAL_TYPE = 'ephemeral';

/** The sandbox shm size: statfs of its `/dev/shm` bind source when that is not `/dev/shm`, else 64 MiB. */
export function sandboxShmSize(spec: OciSpec, host: HostFacts): number {
  const m = spec.mounts.find(
    (x) =>
      x.destination === SHM_DEVICE &&
      x.type === 'bind' &&
      x.source !== undefined &&
      x.source !== SHM_DEVICE,
  );
  const size = m === undefined ? undefined : pathFact(host, m.source!).fsSizeBytes;
  return size !== undefined && size > 0 ? size : DEFAULT_SHM_SIZE_BYTES;
}

/** CreateSandboxRequest's shm Storage. */
export function sandboxShmStorage(sizeBytes: number): StorageInit {
  return {
    driver: 'ephemeral',
    source: 'shm',
    fstype: 'tmpfs',
    options: ['noexec', 'nosuid', 'nodev', 'mode=1777', `size=${sizeBytes}`],
    mountPoint: GUEST_SHM_DIR,
  };
}

/** The reference's ShmVolume selector: `/dev/shm` of any type but `ephemeral`. */
export function isShmMount(m: OciMount): boolean {
  return m.destination === SHM_DEVICE && m.type !== EPHEMERAL_TYPE;
}

/** Container `/dev/shm` → bind of the sandbox shm, no Storage. */
export function shmMount(m: OciMount): OciMount {
  return { ...m, destination: SHM_DEVICE, type: 'bind', source: GUEST_SHM_DIR, options: ['rbind'] };
}

/**
 * `type: ephemeral`, or a bind of a kubelet emptyDir whose host filesystem is tmpfs (runtime-rs
 * `update_ephemeral_storage_type` rewrites those to ephemeral; `kata:guest-mount:*` are left alone).
 */
export function isEphemeralMount(m: OciMount, host: HostFacts): boolean {
  if (m.type === EPHEMERAL_TYPE) return true;
  if (m.type !== 'bind' || m.source === undefined || m.source.startsWith('kata:guest-mount:'))
    return false;
  return isEmptyDir(m.source) && pathFact(host, m.source).fsType === 'tmpfs';
}

export interface EphemeralVolume {
  readonly storage: StorageInit;
  readonly mount: OciMount;
}

/** A tmpfs created by the agent at `/run/kata-containers/sandbox/ephemeral/<basename(src)>`. */
export function planEphemeralVolume(
  m: OciMount,
  index: number,
  specSource: string,
  host: HostFacts,
): Result<EphemeralVolume, Problem> {
  const field = `mounts[${index}]`;
  const source = m.source ?? '';
  if (source === '')
    return err(
      mountProblem(
        specSource,
        field,
        m.destination,
        `got a wrong volume without source: ${m.destination}`,
      ),
    );
  const fact = pathFact(host, source);
  const mountPoint = joinGuest(
    GUEST_EPHEMERAL_DIR,
    path.posix.basename(path.posix.normalize(source)),
  );
  if (mountPoint.isErr())
    return err(mountProblem(specSource, field, source, mountPoint.error.message));
  const options = [
    ...(fact.kind !== 'missing' && fact.gid !== 0 ? [`fsgid=${fact.gid}`] : []),
    ...(fact.fsType === 'tmpfs' && fact.fsSizeBytes !== undefined && fact.fsSizeBytes > 0
      ? [`size=${fact.fsSizeBytes}`]
      : []),
  ];
  return ok({
    storage: {
      driver: 'ephemeral',
      source: 'tmpfs',
      fstype: 'tmpfs',
      options,
      mountPoint: mountPoint.value,
    },
    mount: { ...m, type: 'bind', source: mountPoint.value, options: [...(m.options ?? [])] },
  });
}
