// The agent requests a sandbox and its containers start with (reference §26), built with the
// generated protobuf schemas from the plan's data: CreateSandboxRequest (share-fs storages, shm
// storage) and CreateContainerRequest (rootfs storages, volume storages in mount order, devices,
// the converted OCI spec).
import { create, toJson, type JsonValue } from '@bufbuild/protobuf';
import {
  CreateContainerRequestSchema,
  CreateSandboxRequestSchema,
  type CreateContainerRequest,
  type CreateSandboxRequest,
} from '../gen/agent_pb.js';
import type { SharedFs } from '../config/kata-config.js';
import type { Spec } from '../gen/oci_pb.js';
import { STRIPPED_ANNOTATIONS } from '../spec/annotations.js';
import type { ContainerType } from '../spec/container-type.js';
import type { OciMount, OciSpec } from '../spec/oci-spec.js';
import { toAgentSpec } from './requests-oci.js';
import { GUEST_SHARE_DIR_STORAGE } from './volumes-paths.js';
import type { DeviceInit, StorageInit } from './volumes-storage.js';

export const CONTAINER_TYPE_ANNOTATION = 'io.katacontainers.pkg.oci.container_type';
export const BUNDLE_PATH_ANNOTATION = 'io.katacontainers.pkg.oci.bundle_path';

/** The virtio-fs share the agent mounts at the guest share dir (runtime-rs `get_storages`). */
export const VIRTIO_FS_STORAGE: StorageInit = {
  driver: 'virtio-fs',
  source: 'kataShared',
  fstype: 'virtiofs',
  options: ['nodev'],
  mountPoint: GUEST_SHARE_DIR_STORAGE,
};

/** Storages the sandbox's shared fs needs in CreateSandboxRequest (none without virtio-fs). */
export function sharedFsStorages(sharedFs: SharedFs): StorageInit[] {
  return sharedFs === 'virtio-fs' || sharedFs === 'virtio-fs-nydus' ? [VIRTIO_FS_STORAGE] : [];
}

const storage = (s: StorageInit) => ({
  ...s,
  driverOptions: [...(s.driverOptions ?? [])],
  options: [...s.options],
});

export interface SandboxRequestInput {
  readonly sandboxId: string;
  readonly hostname: string;
  readonly dns: readonly string[];
  readonly storages: readonly StorageInit[];
  readonly guestHookPath: string;
  /** `[agent.kata] kernel_modules` entries: `name param=value …`. */
  readonly kernelModules: readonly string[];
}

export function createSandboxRequest(i: SandboxRequestInput): CreateSandboxRequest {
  return create(CreateSandboxRequestSchema, {
    hostname: i.hostname,
    dns: [...i.dns],
    storages: i.storages.map(storage),
    sandboxPidns: false,
    sandboxId: i.sandboxId,
    guestHookPath: i.guestHookPath,
    kernelModules: i.kernelModules.map((m) => {
      const [name = '', ...parameters] = m.trim().split(/\s+/);
      return { name, parameters };
    }),
  });
}

export interface ContainerRequestInput {
  readonly containerId: string;
  readonly type: ContainerType;
  /** Absolute bundle path, for the bundle_path annotation. */
  readonly bundlePath: string;
  readonly spec: OciSpec;
  readonly rootfsGuestPath: string;
  readonly rootfsStorages: readonly StorageInit[];
  readonly volumeStorages: readonly StorageInit[];
  readonly mounts: readonly OciMount[];
  readonly devices: readonly DeviceInit[];
  /**
   * False when the config's `disable_guest_seccomp` is true (Kata's default): the profile is then
   * not sent, as runtime-rs and runtime-go drop `linux.seccomp` before CreateContainer.
   */
  readonly guestSeccomp: boolean;
}

/** Spec annotations for the agent: STRIPPED_ANNOTATIONS removed, container type and bundle path added. */
export function agentAnnotations(
  annotations: Readonly<Record<string, string>>,
  type: ContainerType,
  bundlePath: string,
): Record<string, string> {
  const out = Object.fromEntries(
    Object.entries(annotations).filter(([k]) => !STRIPPED_ANNOTATIONS.includes(k)),
  );
  out[CONTAINER_TYPE_ANNOTATION] = type;
  out[BUNDLE_PATH_ANNOTATION] = bundlePath;
  return out;
}

/** Namespace types the guest's agent decides itself, dropped from the spec it gets. */
const AGENT_NAMESPACES = new Set(['network', 'cgroup', 'pid']);

/**
 * Namespaces as the guest can have them (runtime-go `constraintGRPCSpec` and
 * `handlePidNamespace`): the network namespace is the VM's own (the host's netns is wired to the
 * guest's interfaces, never joined), the cgroup namespace is the agent's to make, and the pid
 * namespace the agent adds itself (kata-agent appends its own entry: a second one made its exec
 * fail with `failed to join pidns: EINVAL`), so those go; every other namespace keeps its type
 * with the path cleared, since a host path such as containerd's /proc/<pause pid>/ns/ipc names
 * nothing in the guest (kata-agent failed CreateContainer with ENOENT on CNI's netns path).
 * A pod sharing one pid namespace is `sandbox_pidns` instead (sharesPodPidNamespace).
 */
function guestNamespaces(spec: Spec): void {
  const linux = spec.Linux;
  if (linux === undefined) return;
  linux.Namespaces = linux.Namespaces.filter((n) => !AGENT_NAMESPACES.has(n.Type)).map((n) => ({
    ...n,
    Path: '',
  }));
}

/**
 * Whether a pod's container joins the pod's pid namespace (CRI PodPID, `shareProcessNamespace`):
 * containerd's CRI then gives its pid namespace entry the pause container's /proc/<pid>/ns/pid
 * path (ContainerPID: no path). runtime-go `handlePidNamespace` turns that into
 * CreateContainer `sandbox_pidns`; the agent runs the container in the namespace of the pod's
 * first container (Kata's `update_shared_pidns`).
 */
export function sharesPodPidNamespace(type: ContainerType, spec: OciSpec): boolean {
  if (type !== 'pod_container') return false;
  const pid = spec.linux.namespaces?.find((n) => n.type === 'pid');
  return pid?.path !== undefined && pid.path !== '';
}

export function createContainerRequest(i: ContainerRequestInput): CreateContainerRequest {
  const OCI = toAgentSpec(i.spec, {
    rootPath: i.rootfsGuestPath,
    mounts: i.mounts,
    annotations: agentAnnotations(i.spec.annotations, i.type, i.bundlePath),
  });
  guestNamespaces(OCI);
  if (!i.guestSeccomp && OCI.Linux !== undefined) OCI.Linux.Seccomp = undefined;
  return create(CreateContainerRequestSchema, {
    containerId: i.containerId,
    execId: '',
    devices: i.devices.map((d) => ({ ...d })),
    storages: [...i.rootfsStorages, ...i.volumeStorages].map(storage),
    OCI,
    sandboxPidns: sharesPodPidNamespace(i.type, i.spec),
  });
}

/** proto3 canonical JSON (default values omitted), as `kata-ts plan` prints it. */
export const sandboxRequestJson = (r: CreateSandboxRequest): JsonValue =>
  toJson(CreateSandboxRequestSchema, r);
export const containerRequestJson = (r: CreateContainerRequest): JsonValue =>
  toJson(CreateContainerRequestSchema, r);
