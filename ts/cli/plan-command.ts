// `kata-ts plan --config FILE --sandbox ID=DIR [--container ID=DIR]... [--host-facts FILE]`
// Prints the ResourcePlan as one JSON document on stdout (exit 0), or one line per problem
// `kata-ts: <where>: <what>` on stderr and nothing on stdout (exit 2).
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Command } from 'commander';
import { err, ok, Result } from 'neverthrow';
import { z } from 'zod';
import { readKataConfigFile } from '../config/read-config-file.js';
import { formatPlanError, planError, problem, type PlanError } from '../errors.js';
import { gatherHostFacts, gatherPathFacts } from '../host/gather-host-facts.js';
import { quoteValue } from '../input/escape-text.js';
import { issueMessage, jsonErrorField, parseJsonText } from '../input/json-text.js';
import { MAX_HOST_FACTS_FILE_BYTES } from '../input/limits.js';
import { readInputFile } from '../input/read-input-file.js';
import { createLogger } from '../log.js';
import type { HostFacts } from '../plan/host-facts.js';
import { plan, type BundleInput, type ResourcePlan } from '../plan/plan.js';
import { readOciBundle } from '../spec/oci-spec.js';
import { readRootfsMounts } from '../spec/rootfs-mounts-file.js';
import type { CommandContext } from './main.js';

interface PlanOptions {
  readonly config: string;
  readonly sandbox: string;
  readonly container: string[];
  readonly hostFacts?: string;
}

const usage = (flag: string, value: string, what: string): PlanError =>
  planError(problem('usage', 'plan', flag, value, what));

/** `ID=DIR` → [id, dir]. */
function splitBundleArg(
  flag: string,
  value: string,
): Result<{ id: string; dir: string }, PlanError> {
  const at = value.indexOf('=');
  if (at <= 0 || at === value.length - 1)
    return err(usage(flag, value, `expected ID=BUNDLE_DIR, got ${quoteValue(value)}`));
  return ok({ id: value.slice(0, at), dir: value.slice(at + 1) });
}

const HostFactsSchema = z.strictObject({
  cgroupVersion: z.enum(['v1', 'v2']),
  hostCpus: z.int().min(1),
  hostMemoryMiB: z.int().min(1),
  guestProtection: z.enum(['none', 'tdx', 'snp', 'cca', 'se']).default('none'),
  blockDevices: z
    .record(
      z.string().regex(/^\d+:\d+$/),
      z.strictObject({ path: z.string(), readOnly: z.boolean() }),
    )
    .default({}),
  paths: z
    .record(
      z.string(),
      z.strictObject({
        kind: z.enum(['file', 'dir', 'block', 'char', 'fifo', 'socket', 'missing']),
        mode: z.int().min(0),
        uid: z.int().min(0),
        gid: z.int().min(0),
        ino: z.int().min(0).default(0),
        rdev: z.strictObject({ major: z.int().min(0), minor: z.int().min(0) }).optional(),
        realpath: z.string().optional(),
        fsType: z.string().optional(),
        fsSizeBytes: z.int().min(0).optional(),
        fileCount: z.int().min(-1).optional(),
      }),
    )
    .optional(),
  rootlessDir: z.string().optional(),
});

/** `--host-facts FILE`: read like any input (regular, capped), parsed without echoing it. */
function readHostFacts(file: string): Result<HostFacts, PlanError> {
  const fail = (field: string, what: string) => problem('input', file, field, '', what);
  const text = readInputFile(file, {
    maxBytes: MAX_HOST_FACTS_FILE_BYTES,
    limitName: 'MAX_HOST_FACTS_FILE_BYTES',
  });
  if (text.isErr()) return err(planError(fail('--host-facts', text.error.what)));
  const json = parseJsonText(text.value);
  if (json.isErr()) return err(planError(fail(jsonErrorField(json.error), json.error.message)));
  const parsed = HostFactsSchema.safeParse(json.value);
  if (parsed.success) return ok(parsed.data);
  return err(
    planError(
      ...parsed.error.issues.map((i) =>
        fail(i.path.map(String).join('.') || '(root)', issueMessage(i)),
      ),
    ),
  );
}

async function buildPlan(
  opts: PlanOptions,
  ctx: CommandContext,
): Promise<Result<ResourcePlan, PlanError>> {
  const sandboxArg = splitBundleArg('--sandbox', opts.sandbox);
  if (sandboxArg.isErr()) return err(sandboxArg.error);
  const containerArgs = Result.combine(opts.container.map((c) => splitBundleArg('--container', c)));
  if (containerArgs.isErr()) return err(containerArgs.error);

  const parsed = readKataConfigFile(opts.config);
  if (parsed.isErr()) return err(parsed.error);

  const bundles: BundleInput[] = [];
  for (const { id, dir } of [sandboxArg.value, ...containerArgs.value]) {
    const read = await readOciBundle(dir);
    if (read.isErr()) return err(read.error);
    const shownDir = path.relative(process.cwd(), read.value.bundleDir) || '.';
    const rootfsMounts = readRootfsMounts(read.value.bundleDir, shownDir);
    if (rootfsMounts.isErr()) return err(rootfsMounts.error);
    bundles.push({
      id,
      bundleDir: shownDir,
      bundlePath: read.value.bundleDir,
      spec: read.value.spec,
      rootfsMounts: rootfsMounts.value,
    });
  }

  const specs = bundles.map((b) => b.spec);
  const pathRequest = {
    rootfsMounts: bundles.map((b) => b.rootfsMounts ?? []),
    kubeletRootDir: parsed.value.config.runtime.kubeletRootDir,
  };
  // A facts file without `paths` gets them from this machine (mount sources are real files).
  const facts = opts.hostFacts
    ? readHostFacts(opts.hostFacts).map((f): HostFacts => {
        if (f.paths !== undefined) return f;
        const gathered = gatherPathFacts({ specs, ...pathRequest });
        return {
          ...f,
          paths: gathered.paths,
          blockDevices: { ...gathered.blockDevices, ...f.blockDevices },
        };
      })
    : ok(gatherHostFacts(specs, pathRequest));
  if (facts.isErr()) return err(facts.error);
  // runtime-rs reads the rootless dir from XDG_RUNTIME_DIR; a facts file may name it instead.
  const xdg = process.env['XDG_RUNTIME_DIR'];
  const host =
    facts.value.rootlessDir === undefined && xdg !== undefined && xdg !== ''
      ? { ...facts.value, rootlessDir: xdg }
      : facts.value;

  const log = createLogger(ctx.logLevel());
  for (const w of parsed.value.warnings) log.warn({ source: opts.config }, w);
  return plan({
    config: parsed.value.config,
    configSource: opts.config,
    sandbox: bundles[0]!,
    containers: bundles.slice(1),
    host,
    random: (bytes) => randomBytes(bytes).toString('hex'),
  }).map((p) => ({ ...p, warnings: [...parsed.value.warnings, ...p.warnings] }));
}

export function registerPlanCommand(program: Command, ctx: CommandContext): void {
  program
    .command('plan')
    .description('print the resource plan for a sandbox and its containers as JSON')
    .requiredOption('--config <file>', 'Kata configuration.toml')
    .requiredOption('--sandbox <id=dir>', 'sandbox id and its OCI bundle directory')
    .option(
      '--container <id=dir>',
      'a further container (repeatable, added in order)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--host-facts <file>',
      'JSON host facts instead of reading this machine (cgroupVersion, hostCpus, hostMemoryMiB, …; without "paths", path facts are read from this machine)',
    )
    .action(async (opts: PlanOptions) => {
      const result = await buildPlan(opts, ctx);
      if (result.isErr()) {
        for (const line of formatPlanError(result.error)) ctx.io.err(`${line}\n`);
        ctx.exitCode = 2;
        return;
      }
      ctx.io.out(`${JSON.stringify(result.value, null, 2)}\n`);
    });
}
