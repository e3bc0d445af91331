// What a pod asks for that a VM sandbox cannot give, refused when its bundle is read, before
// anything is made (Kata documents the same limits in docs/Limitations.md):
// - HostPID / HostIPC / HostNetwork: the pod would share the host's pid, IPC or network
//   namespace; its processes run in the guest kernel, which has none of the host's. containerd's
//   CRI writes these as a sandbox spec whose `linux.namespaces` lacks the `pid`, `ipc` or
//   `network` entry (sandbox_run_linux.go: WithoutNamespace for NamespaceMode_NODE). Only a spec
//   that says it is a CRI pod sandbox and lists its namespaces is judged, so a plain `ctr run`
//   bundle, or one without a namespace list, is never refused here.
// - Bidirectional mount propagation (`shared`/`rshared`): mounts made in the guest cannot appear
//   on the host.
import { problem, type Problem } from '../errors.js';
import { clipValue } from '../input/escape-text.js';
import { containerType } from './container-type.js';
import type { OciSpec } from './oci-spec.js';

/** The CRI pod field behind each namespace a host-namespace pod leaves out. */
const HOST_NAMESPACE_FIELDS = [
  { type: 'pid', field: 'HostPID' },
  { type: 'ipc', field: 'HostIPC' },
  { type: 'network', field: 'HostNetwork' },
] as const;

/** Propagation options that would carry mounts from the container back to the host. */
const BIDIRECTIONAL = new Set(['shared', 'rshared']);

function hostNamespaceProblems(spec: OciSpec, source: string): Problem[] {
  const namespaces = spec.linux.namespaces;
  if (namespaces === undefined) return [];
  if (containerType(spec.annotations).type !== 'pod_sandbox') return [];
  const present = new Set(namespaces.map((n) => n.type));
  return HOST_NAMESPACE_FIELDS.filter((n) => !present.has(n.type)).map((n) =>
    problem(
      'spec',
      source,
      'linux.namespaces',
      '',
      `${n.field}=true is not supported: a pod in a VM cannot share the host's ${n.type} namespace (the sandbox spec has no "${n.type}" namespace)`,
    ),
  );
}

function propagationProblems(spec: OciSpec, source: string): Problem[] {
  return spec.mounts.flatMap((m, i) => {
    const opt = (m.options ?? []).find((o) => BIDIRECTIONAL.has(o));
    return opt === undefined
      ? []
      : [
          problem(
            'spec',
            source,
            `mounts[${i}].options`,
            opt,
            `mount ${JSON.stringify(clipValue(m.destination))}: "${opt}" (bidirectional) propagation is not supported: mounts made in the VM cannot propagate back to the host`,
          ),
        ];
  });
}

/** Every problem of a spec a VM sandbox refuses (empty: nothing refused). */
export function vmRefusals(spec: OciSpec, source: string): Problem[] {
  return [...hostNamespaceProblems(spec, source), ...propagationProblems(spec, source)];
}
