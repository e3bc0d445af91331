// plan.scaling: planning 1000 containers against 10× planning 100 (ratio ≥ 1: linear or better).
// A scaling figure — ours against ours, no peer — so the summary does not count it as one.
import { readFileSync } from 'node:fs';
import { defaultKataConfig } from '../ts/config/parse-config.js';
import { EXAMPLE_HOST_FACTS } from '../ts/plan/host-facts.js';
import { plan, type BundleInput } from '../ts/plan/plan.js';
import { parseOciSpec } from '../ts/spec/oci-spec.js';
import { scaling, type Metrics } from './metric.js';

const exampleText = readFileSync(
  new URL('../examples/bundle/config.json', import.meta.url),
  'utf8',
);

function bundles(n: number): BundleInput[] {
  return Array.from({ length: n + 1 }, (_, i) => {
    const spec = parseOciSpec(exampleText, 'example')._unsafeUnwrap();
    const cpu = {
      quota: 10_000 + (i % 7) * 1000,
      period: i % 3 === 0 ? 50_000 : 100_000,
      ...(i % 11 === 0 ? { cpus: `${i % 4}-${(i % 4) + 2}` } : {}),
    };
    return {
      id: i === 0 ? 'sandbox' : `c${i}`,
      bundleDir: `/bundles/${i}`,
      spec: { ...spec, linux: { ...spec.linux, resources: { ...spec.linux.resources, cpu } } },
    };
  });
}

function msPerPlan(n: number, rounds: number): number {
  const [sandbox, ...containers] = bundles(n);
  const input = {
    config: defaultKataConfig(),
    configSource: 'default',
    sandbox: sandbox!,
    containers,
    host: { ...EXAMPLE_HOST_FACTS, hostCpus: 4096 },
  };
  plan(input)._unsafeUnwrap(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    plan(input)._unsafeUnwrap();
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
}

export async function run(): Promise<Metrics> {
  const t100 = msPerPlan(100, 21);
  const t1000 = msPerPlan(1000, 9);
  return {
    'plan.scaling': scaling(
      Number(t1000.toFixed(3)),
      Number((10 * t100).toFixed(3)),
      'ms per 1000 containers',
      `scaling, not a peer: plan() for 1000 containers (ours) vs 10 × plan() for 100 (ours, linear extrapolation); ratio ≥ 1 means linear or better (median; ${t100.toFixed(2)} ms per 100)`,
    ),
  };
}
