// Adding a container to a running sandbox: re-plan the sandbox with [...existing, new] and the
// same random draws (replayed from state), then check that everything already applied came out
// the same — the planner is pure and plans containers in order, so it does; a difference means
// the inputs changed under us (host facts are read again: a mount source replaced, a block
// device gone) and the add is refused rather than applied against a different plan.
import { isDeepStrictEqual } from 'node:util';
import { err, ok, type Result } from 'neverthrow';
import type { ParsedConfig } from '../config/parse-config.js';
import { formatPlanError } from '../errors.js';
import { plan, type BundleInput, type ContainerPlan, type ResourcePlan } from '../plan/plan.js';
import type { LifecycleError } from './errors.js';
import { hostFactsFor, replayingRandom } from './sandbox-inputs.js';

export interface Replanned {
  readonly plan: ResourcePlan;
  readonly container: ContainerPlan;
  /** Every random draw, old and new, to persist. */
  readonly random: string[];
}

/** The parts of a plan a running sandbox has already applied. */
function applied(p: ResourcePlan, containers: number) {
  return {
    ports: p.ports,
    coldplugDevices: p.coldplugDevices,
    initdata: p.initdata,
    createSandbox: p.createSandbox,
    vcpusBoot: p.vcpus.boot,
    memoryMiB: p.memoryMiB,
    containers: p.containers.slice(0, containers),
  };
}

export function replanWith(
  current: ResourcePlan,
  config: ParsedConfig,
  configPath: string,
  bundles: readonly BundleInput[],
  added: BundleInput,
  recorded: readonly string[],
): Result<Replanned, LifecycleError> {
  const sid = current.sandboxId;
  const drawn: string[] = [];
  const all = [...bundles, added];
  const next = plan({
    config: config.config,
    configSource: configPath,
    sandbox: all[0]!,
    containers: all.slice(1),
    // The rootless dir is the VMM user's, fixed when the sandbox was created.
    host: {
      ...hostFactsFor(all, config),
      ...(current.rootlessDir !== null ? { rootlessDir: current.rootlessDir } : {}),
    },
    random: replayingRandom(recorded, drawn),
  });
  if (next.isErr())
    return err({
      kind: 'input',
      sandboxId: sid,
      lines: formatPlanError(next.error),
      message: 'plan',
    });
  if (!isDeepStrictEqual(applied(current, bundles.length), applied(next.value, bundles.length))) {
    return err({
      kind: 'step',
      sandboxId: sid,
      step: 'plan',
      message: `re-planning with ${added.id} changed what is already applied (were the bundles edited?)`,
    });
  }
  return ok({ plan: next.value, container: next.value.containers[bundles.length]!, random: drawn });
}
