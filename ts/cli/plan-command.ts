// `kata-ts plan --config FILE --sandbox ID=DIR [--container ID=DIR]... [--host-facts FILE]`
// Prints the ResourcePlan as one JSON document on stdout (exit 0), or one line per problem
// `kata-ts: <where>: <what>` on stderr and nothing on stdout (exit 2).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { err, ok, Result, ResultAsync } from 'neverthrow';
import { z } from 'zod';
import { parseKataConfig } from '../config/parse-config.js';
import { formatPlanError, planError, problem, type PlanError } from '../errors.js';
import { gatherHostFacts } from '../host/gather-host-facts.js';
import { createLogger } from '../log.js';
import type { HostFacts } from '../plan/host-facts.js';
import { plan, type BundleInput, type ResourcePlan } from '../plan/plan.js';
import { readOciBundle } from '../spec/oci-spec.js';
import type { CommandContext } from './main.js';

interface PlanOptions {
  readonly config: string;
  readonly sandbox: string;
  readonly container: string[];
  readonly hostFacts?: string;
}

const usage = (flag: string, value: string, what: string): PlanError => planError(problem('usage', 'plan', flag, value, what));

/** `ID=DIR` → [id, dir]. */
function splitBundleArg(flag: string, value: string): Result<{ id: string; dir: string }, PlanError> {
  const at = value.indexOf('=');
  if (at <= 0 || at === value.length - 1) return err(usage(flag, value, `expected ID=BUNDLE_DIR, got ${JSON.stringify(value)}`));
  return ok({ id: value.slice(0, at), dir: value.slice(at + 1) });
}

function readText(file: string, field: string): ResultAsync<string, PlanError> {
  return ResultAsync.fromPromise(readFile(file, 'utf8'), (e) =>
    planError(problem('input', file, field, file, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)),
  );
}

const HostFactsSchema = z.strictObject({
  cgroupVersion: z.enum(['v1', 'v2']),
  hostCpus: z.int().min(1),
  hostMemoryMiB: z.int().min(1),
  guestProtection: z.enum(['none', 'tdx', 'snp', 'cca', 'se']).default('none'),
  blockDevices: z.record(z.string().regex(/^\d+:\d+$/), z.strictObject({ path: z.string(), readOnly: z.boolean() })).default({}),
});

function readHostFacts(file: string): ResultAsync<HostFacts, PlanError> {
  return readText(file, '--host-facts').andThen((text) => {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      return err(planError(problem('input', file, 'json', '', `invalid JSON: ${(e as Error).message}`)));
    }
    const parsed = HostFactsSchema.safeParse(json);
    if (parsed.success) return ok(parsed.data);
    return err(planError(...parsed.error.issues.map((i) => problem('input', file, i.path.join('.') || '(root)', '', i.message))));
  });
}

async function buildPlan(opts: PlanOptions, ctx: CommandContext): Promise<Result<ResourcePlan, PlanError>> {
  const sandboxArg = splitBundleArg('--sandbox', opts.sandbox);
  if (sandboxArg.isErr()) return err(sandboxArg.error);
  const containerArgs = Result.combine(opts.container.map((c) => splitBundleArg('--container', c)));
  if (containerArgs.isErr()) return err(containerArgs.error);

  const configText = await readText(opts.config, '--config');
  if (configText.isErr()) return err(configText.error);
  const parsed = parseKataConfig(configText.value, opts.config);
  if (parsed.isErr()) return err(parsed.error);

  const bundles: BundleInput[] = [];
  for (const { id, dir } of [sandboxArg.value, ...containerArgs.value]) {
    const read = await readOciBundle(dir);
    if (read.isErr()) return err(read.error);
    bundles.push({ id, bundleDir: path.relative(process.cwd(), read.value.bundleDir) || '.', spec: read.value.spec });
  }

  const facts = opts.hostFacts ? await readHostFacts(opts.hostFacts) : ok(gatherHostFacts(bundles.map((b) => b.spec)));
  if (facts.isErr()) return err(facts.error);

  const log = createLogger(ctx.logLevel());
  for (const w of parsed.value.warnings) log.warn({ source: opts.config }, w);
  return plan({
    config: parsed.value.config,
    configSource: opts.config,
    sandbox: bundles[0]!,
    containers: bundles.slice(1),
    host: facts.value,
  }).map((p) => ({ ...p, warnings: [...parsed.value.warnings, ...p.warnings] }));
}

export function registerPlanCommand(program: Command, ctx: CommandContext): void {
  program
    .command('plan')
    .description('print the resource plan for a sandbox and its containers as JSON')
    .requiredOption('--config <file>', "Kata configuration.toml")
    .requiredOption('--sandbox <id=dir>', 'sandbox id and its OCI bundle directory')
    .option('--container <id=dir>', 'a further container (repeatable, added in order)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--host-facts <file>', 'JSON host facts instead of reading this machine (cgroupVersion, hostCpus, hostMemoryMiB, …)')
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
