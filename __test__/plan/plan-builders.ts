// Small builders for planner tests: the example config and spec with edits, path facts, and a
// deterministic plan() call.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KataConfig, HypervisorConfig, RuntimeConfig } from '../../ts/config/kata-config.js';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import { EXAMPLE_HOST_FACTS, type HostFacts, type PathFact } from '../../ts/plan/host-facts.js';
import { plan, type BundleInput, type ResourcePlan } from '../../ts/plan/plan.js';
import type { RootfsMount } from '../../ts/plan/rootfs.js';
import { sequentialHex } from '../../ts/plan/volumes-paths.js';
import { parseOciSpec, type OciSpec } from '../../ts/spec/oci-spec.js';
import type { PlanError } from '../../ts/errors.js';
import type { Result } from 'neverthrow';

const root = fileURLToPath(new URL('../../', import.meta.url));
const exampleConfigText = readFileSync(path.join(root, 'examples/configuration-qemu.toml'), 'utf8');
const exampleSpecText = readFileSync(path.join(root, 'examples/bundle/config.json'), 'utf8');

export function kataConfig(
  hv: Partial<HypervisorConfig> = {},
  runtime: Partial<RuntimeConfig> = {},
): KataConfig {
  const c = parseKataConfig(exampleConfigText, 'configuration.toml')._unsafeUnwrap().config;
  return { ...c, hypervisor: { ...c.hypervisor, ...hv }, runtime: { ...c.runtime, ...runtime } };
}

/** The example spec with `patch` applied to its JSON, parsed. */
export function ociSpec(patch: (s: Record<string, any>) => void = () => {}): OciSpec {
  const json = JSON.parse(exampleSpecText);
  patch(json);
  return parseOciSpec(JSON.stringify(json), 'config.json')._unsafeUnwrap();
}

/** A pod container spec with the given mounts (no default mounts). */
export function containerSpec(
  mounts: unknown[],
  annotations: Record<string, string> = {},
): OciSpec {
  return ociSpec((s) => {
    s.mounts = mounts;
    s.annotations = {
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': 'sb',
      'io.kubernetes.cri.image-name': 'docker.io/library/busybox:latest',
      ...annotations,
    };
  });
}

const fact = (kind: PathFact['kind'], extra: Partial<PathFact>): PathFact => ({
  kind,
  mode: 0,
  uid: 0,
  gid: 0,
  ino: 1,
  ...extra,
});
export const dirFact = (realpath: string, extra: Partial<PathFact> = {}) =>
  fact('dir', { mode: 0o40755, realpath, ...extra });
export const fileFact = (realpath: string, extra: Partial<PathFact> = {}) =>
  fact('file', { mode: 0o100644, realpath, ...extra });
export const blockFact = (realpath: string, major: number, minor: number) =>
  fact('block', { mode: 0o60660, realpath, rdev: { major, minor } });
export const charFact = (realpath: string) =>
  fact('char', { mode: 0o20666, realpath, rdev: { major: 1, minor: 3 } });

export function hostFacts(
  paths: Record<string, PathFact> = {},
  blockDevices: HostFacts['blockDevices'] = {},
): HostFacts {
  return { ...EXAMPLE_HOST_FACTS, paths, blockDevices };
}

export interface Bundle {
  readonly id: string;
  readonly spec: OciSpec;
  readonly rootfsMounts?: RootfsMount[];
}

export function planOf(opts: {
  config?: KataConfig;
  host?: HostFacts;
  sandbox?: Bundle;
  containers?: Bundle[];
}): Result<ResourcePlan, PlanError> {
  const toInput = (b: Bundle): BundleInput => ({
    id: b.id,
    bundleDir: `/bundles/${b.id}`,
    spec: b.spec,
    ...(b.rootfsMounts ? { rootfsMounts: b.rootfsMounts } : {}),
  });
  return plan({
    config: opts.config ?? kataConfig(),
    configSource: 'configuration.toml',
    sandbox: toInput(opts.sandbox ?? { id: 'sb', spec: ociSpec() }),
    containers: (opts.containers ?? []).map(toInput),
    host: opts.host ?? hostFacts(),
    random: sequentialHex(),
  });
}

/** The messages of a failed plan, each `<field>: <what>`. */
export function planMessages(r: Result<ResourcePlan, PlanError>): string[] {
  return r.isErr() ? r.error.problems.map((p) => p.message) : [];
}
