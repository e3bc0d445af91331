// Reading what a sandbox is planned from: the Kata config, the OCI bundles (with their
// `rootfs-mounts.json`), and this machine's host facts; and the random source the planner draws
// names from, recorded so a later re-plan (adding a container) draws the same names again.
import { randomBytes } from 'node:crypto';
import { ResultAsync } from 'neverthrow';
import type { ParsedConfig } from '../config/parse-config.js';
import { readKataConfigFile } from '../config/read-config-file.js';
import { formatPlanError, type PlanError } from '../errors.js';
import { gatherHostFacts } from '../host/gather-host-facts.js';
import type { HostFacts } from '../plan/host-facts.js';
import type { BundleInput } from '../plan/plan.js';
import type { RandomHex } from '../plan/volumes-paths.js';
import { readOciBundle } from '../spec/oci-spec.js';
import { readRootfsMounts } from '../spec/rootfs-mounts-file.js';
import type { LifecycleError } from './errors.js';

function inputError(sandboxId: string, lines: string[]): LifecycleError {
  return { kind: 'input', sandboxId, lines, message: lines.join('; ') };
}

const fromPlanError = (sandboxId: string) => (e: PlanError) =>
  inputError(sandboxId, formatPlanError(e));

/** configuration.toml, read as every input is (ts/input/read-input-file.ts). */
export function readConfig(
  sandboxId: string,
  configPath: string,
): ResultAsync<ParsedConfig, LifecycleError> {
  return new ResultAsync(
    Promise.resolve(readKataConfigFile(configPath).mapErr(fromPlanError(sandboxId))),
  );
}

/** A bundle as the planner takes it; `args` replaces `process.args` (`kata-ts run … -- cmd`). */
export function readBundle(
  sandboxId: string,
  id: string,
  dir: string,
  args?: readonly string[],
): ResultAsync<BundleInput, LifecycleError> {
  return readOciBundle(dir)
    .mapErr(fromPlanError(sandboxId))
    .andThen(({ spec, bundleDir }) =>
      readRootfsMounts(bundleDir)
        .mapErr(fromPlanError(sandboxId))
        .map((rootfsMounts): BundleInput => {
          const process = {
            user: { uid: 0, gid: 0 },
            cwd: '/',
            ...spec.process,
            args: [...(args ?? [])],
          };
          const withArgs = args && args.length > 0 ? { ...spec, process } : spec;
          return { id, bundleDir, bundlePath: bundleDir, spec: withArgs, rootfsMounts };
        }),
    );
}

/** Host facts for planning these bundles on this machine. */
export function hostFactsFor(bundles: readonly BundleInput[], config: ParsedConfig): HostFacts {
  return gatherHostFacts(
    bundles.map((b) => b.spec),
    {
      rootfsMounts: bundles.map((b) => b.rootfsMounts ?? []),
      kubeletRootDir: config.config.runtime.kubeletRootDir,
    },
  );
}

/**
 * A RandomHex that first replays `recorded` (in order) and then draws fresh bytes; every value it
 * hands out is appended to `drawn`, which the caller persists.
 */
export function replayingRandom(recorded: readonly string[], drawn: string[]): RandomHex {
  let next = 0;
  return (bytes) => {
    const replay = recorded[next];
    next++;
    const value =
      replay !== undefined && replay.length === bytes * 2
        ? replay
        : randomBytes(bytes).toString('hex');
    drawn.push(value);
    return value;
  };
}
