// What a container is to Kubernetes (pod sandbox, container in a pod, or neither) and which image
// it runs, from the CRI annotations containerd, CRI-O and dockershim set. Semantics of kata-types
// `k8s.rs::container_type_with_id` and runtime-rs `virtual_volume.rs::get_image_reference`.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';
import { clipValue } from '../input/escape-text.js';

/** CRI-O annotation keys. */
export const CRIO_CONTAINER_TYPE = 'io.kubernetes.cri-o.ContainerType';
export const CRIO_SANDBOX_ID = 'io.kubernetes.cri-o.SandboxID';
export const CRIO_IMAGE_NAME = 'io.kubernetes.cri-o.ImageName';
/** containerd CRI annotation keys. */
export const CRI_CONTAINER_TYPE = 'io.kubernetes.cri.container-type';
export const CRI_SANDBOX_ID = 'io.kubernetes.cri.sandbox-id';
export const CRI_IMAGE_NAME = 'io.kubernetes.cri.image-name';
/** dockershim annotation keys. */
export const DOCKER_CONTAINER_TYPE = 'io.kubernetes.docker.type';
export const DOCKER_SANDBOX_ID = 'io.kubernetes.sandbox.id';

export type ContainerType = 'pod_sandbox' | 'pod_container' | 'single_container';

export interface ContainerTypeInfo {
  readonly type: ContainerType;
  /** The pod's sandbox id, for a `pod_container` that names one; otherwise null. */
  readonly sandboxId: string | null;
}

type Annotations = Readonly<Record<string, string>>;

function get(annotations: Annotations, key: string): string | undefined {
  return Object.hasOwn(annotations, key) ? annotations[key] : undefined;
}

/** kata-types `ContainerType::from_str`; anything else is null (the key is then skipped). */
export function parseContainerType(value: string): ContainerType | null {
  switch (value) {
    case 'sandbox':
    case 'pod_sandbox':
    case 'podsandbox':
      return 'pod_sandbox';
    case 'container':
    case 'pod_container':
      return 'pod_container';
    case 'single_container':
      return 'single_container';
    default:
      return null;
  }
}

// Key priority: CRI-O, then containerd CRI, then dockershim.
const TYPE_KEYS = [CRIO_CONTAINER_TYPE, CRI_CONTAINER_TYPE, DOCKER_CONTAINER_TYPE] as const;
const SANDBOX_ID_KEYS = [CRIO_SANDBOX_ID, CRI_SANDBOX_ID, DOCKER_SANDBOX_ID] as const;

/**
 * The container's type: the first type annotation (in key priority) whose value parses decides;
 * none → single_container. A pod container's sandbox id is the first sandbox-id annotation
 * present, in the same priority, whichever key gave the type.
 */
export function containerType(annotations: Annotations): ContainerTypeInfo {
  let type: ContainerType = 'single_container';
  for (const key of TYPE_KEYS) {
    const value = get(annotations, key);
    const parsed = value === undefined ? null : parseContainerType(value);
    if (parsed !== null) {
      type = parsed;
      break;
    }
  }
  if (type !== 'pod_container') return { type, sandboxId: null };
  const idKey = SANDBOX_ID_KEYS.find((k) => get(annotations, k) !== undefined);
  return { type, sandboxId: idKey === undefined ? null : (get(annotations, idKey) ?? null) };
}

/**
 * The image a guest-pulled container runs. The CRI type key, then the CRI-O one, decides: a pod
 * sandbox runs `pause`; a container runs the image named by the same runtime's image key (missing:
 * `get image reference failed`). With no parsable type key, the CRI image name, then the CRI-O one
 * (runtime-rs 2026 fallback for nerdctl); with neither: `no target image reference found`.
 */
export function imageReference(annotations: Annotations): Result<string, Problem> {
  for (const key of [CRI_CONTAINER_TYPE, CRIO_CONTAINER_TYPE]) {
    const value = get(annotations, key);
    const type = value === undefined ? null : parseContainerType(value);
    if (type === null) continue;
    if (type === 'pod_sandbox') return ok('pause');
    const imageKey = key === CRIO_CONTAINER_TYPE ? CRIO_IMAGE_NAME : CRI_IMAGE_NAME;
    const image = get(annotations, imageKey);
    return image === undefined
      ? err(
          problem(
            'annotation',
            'annotations',
            imageKey,
            '',
            `get image reference failed (${key}=${clipValue(value ?? '')} but no ${imageKey})`,
          ),
        )
      : ok(image);
  }
  const fallback = get(annotations, CRI_IMAGE_NAME) ?? get(annotations, CRIO_IMAGE_NAME);
  return fallback === undefined
    ? err(
        problem('annotation', 'annotations', CRI_IMAGE_NAME, '', 'no target image reference found'),
      )
    : ok(fallback);
}
