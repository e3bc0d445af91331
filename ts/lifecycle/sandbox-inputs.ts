// Reading what a sandbox is planned from: the Kata config, the OCI bundles (with their
// `rootfs-mounts.json`), and this machine's host facts; and the random source the planner draws
// names from, recorded so a later re-plan (adding a container) draws the same names again.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { z } from 'zod';
import { parseKataConfig, type ParsedConfig } from '../config/parse-config.js';
import { formatPlanError, type PlanError } from '../errors.js';
import { gatherHostFacts } from '../host/gather-host-facts.js';
import type { HostFacts } from '../plan/host-facts.js';
import type { BundleInput } from '../plan/plan.js';
import type { RootfsMount } from '../plan/rootfs.js';
import type { RandomHex } from '../plan/volumes-paths.js';
import { readOciBundle } from '../spec/oci-spec.js';
import type { LifecycleError } from './errors.js';

const RootfsMountsSchema = z.array(
  z.strictObject({ type: z.string(), source: z.string(), target: z.string().optional(), options: z.array(z.string()).default([]) }),
);

function inputError(sandboxId: string, lines: string[]): LifecycleError {
  return { kind: 'input', sandboxId, lines, message: lines.join('; ') };
}

const fromPlanError = (sandboxId: string) => (e: PlanError) => inputError(sandboxId, formatPlanError(e));

export function readConfig(sandboxId: string, configPath: string): ResultAsync<ParsedConfig, LifecycleError> {
  return ResultAsync.fromPromise(readFile(configPath, 'utf8'), (e) =>
    inputError(sandboxId, [`kata-ts: ${configPath}: cannot read: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]),
  ).andThen((text) => parseKataConfig(text, configPath).mapErr(fromPlanError(sandboxId)));
}

/** `<bundle>/rootfs-mounts.json` (a shim's rootfs mounts), or none. */
function readRootfsMounts(sandboxId: string, bundleDir: string): ResultAsync<RootfsMount[], LifecycleError> {
  const file = path.join(bundleDir, 'rootfs-mounts.json');
  return ResultAsync.fromPromise(readFile(file, 'utf8'), (e) => e as NodeJS.ErrnoException)
    .orElse((e) => (e.code === 'ENOENT' ? ok('[]') : err(inputError(sandboxId, [`kata-ts: ${file}: cannot read: ${e.code ?? e.message}`]))))
    .andThen((text): Result<RootfsMount[], LifecycleError> => {
      try {
        const parsed = RootfsMountsSchema.safeParse(JSON.parse(text));
        if (parsed.success) return ok(parsed.data);
        return err(inputError(sandboxId, parsed.error.issues.map((i) => `kata-ts: ${file}: ${i.path.join('.')}: ${i.message}`)));
      } catch (e) {
        return err(inputError(sandboxId, [`kata-ts: ${file}: invalid JSON: ${(e as Error).message}`]));
      }
    });
}

/** A bundle as the planner takes it; `args` replaces `process.args` (`kata-ts run … -- cmd`). */
export function readBundle(sandboxId: string, id: string, dir: string, args?: readonly string[]): ResultAsync<BundleInput, LifecycleError> {
  return readOciBundle(dir)
    .mapErr(fromPlanError(sandboxId))
    .andThen(({ spec, bundleDir }) =>
      readRootfsMounts(sandboxId, bundleDir).map((rootfsMounts): BundleInput => {
        const process = { user: { uid: 0, gid: 0 }, cwd: '/', ...spec.process, args: [...(args ?? [])] };
        const withArgs = args && args.length > 0 ? { ...spec, process } : spec;
        return { id, bundleDir, bundlePath: bundleDir, spec: withArgs, rootfsMounts };
      }),
    );
}

/** Host facts for planning these bundles on this machine. */
export function hostFactsFor(bundles: readonly BundleInput[], config: ParsedConfig): HostFacts {
  return gatherHostFacts(
    bundles.map((b) => b.spec),
    { rootfsMounts: bundles.map((b) => b.rootfsMounts ?? []), kubeletRootDir: config.config.runtime.kubeletRootDir },
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
    const value = replay !== undefined && replay.length === bytes * 2 ? replay : randomBytes(bytes).toString('hex');
    drawn.push(value);
    return value;
  };
}
