// Planner fuzzing (issue #13): generated OCI specs, annotations, host facts and configs, valid
// and hostile. `plan` never throws, fails only with problems naming a field, keeps guest paths
// under /run/kata-containers/, writes on the host only below the sandbox's host dirs, sizes vCPUs
// as an exact rational computation does, and gives the same plan for the same input. The parsers
// never throw on random text. FUZZ_RUNS=<n> runs every property n times (default: a bounded CI
// run, < 60 s), FUZZ_SEED=<n> replays a reported seed; with FUZZ_RUNS or FUZZ_RECORD set the totals
// go to bench/results.json as `fuzz.plan`. A long run:
//   FUZZ_RUNS=20000 npx ava --timeout=60m __test__/fuzz/plan-properties.spec.ts
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { parseKataConfig } from '../../ts/config/parse-config.js';
import type { KataConfig } from '../../ts/config/kata-config.js';
import { formatPlanError, type PlanError } from '../../ts/errors.js';
import { escapeControl } from '../../ts/input/escape-text.js';
import { MAX_ERROR_LINE_CHARS } from '../../ts/input/limits.js';
import { plan, type BundleInput, type PlanInput, type ResourcePlan } from '../../ts/plan/plan.js';
import type { HostFacts } from '../../ts/plan/host-facts.js';
import { sequentialHex } from '../../ts/plan/volumes-paths.js';
import { applyConfigAnnotations } from '../../ts/spec/annotations.js';
import { parseOciSpec, type OciSpec } from '../../ts/spec/oci-spec.js';
import { fuzzFigures, recordFuzzResult } from './fuzz-results.js';
import { OVERSIZE_MARK } from './hostile-values.js';
import {
  ceilOf,
  decimal,
  expectedMemoryAfter,
  expectedStatic,
  expectedVcpusAfter,
  guestPathProblems,
  hostWriteProblems,
  type StaticRequest,
} from './plan-oracles.js';
import {
  configEdit,
  configText,
  containerId,
  EXAMPLE_CONFIG_TEXT,
  hostFactsArb,
  rootfsMounts,
  specShape,
  specText,
  usefulEdit,
  type SpecShape,
} from './plan-inputs.js';

const FUZZ_RUNS = Number(process.env['FUZZ_RUNS'] ?? '') || 0;
const runs = (ci: number): number => (FUZZ_RUNS > 0 ? FUZZ_RUNS : ci);
const started = Date.now();
const totals = { executions: 0, failures: 0 };

/** Runs a property, counting executions and failures for the summary. */
function check<T>(
  t: ExecutionContext,
  arb: fc.Arbitrary<T>,
  numRuns: number,
  predicate: (value: T) => void,
): void {
  let executions = 0;
  const seed =
    process.env['FUZZ_SEED'] === undefined ? {} : { seed: Number(process.env['FUZZ_SEED']) };
  const result = fc.check(
    fc.property(arb, (v) => {
      executions++;
      predicate(v);
    }),
    { numRuns, ...seed },
  );
  totals.executions += executions;
  if (result.failed) totals.failures++;
  if (!result.failed) {
    t.pass();
    return;
  }
  const error =
    result.errorInstance instanceof Error
      ? result.errorInstance.message
      : String(result.errorInstance);
  t.fail(
    `seed ${result.seed}, path ${result.counterexamplePath}: ${error}\ncounterexample: ${JSON.stringify(result.counterexample).slice(0, 4000)}`,
  );
}

/** Raw characters that would end a line or reach the terminal (checked independently of the escaper). */
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
/** An oversize value (hostile-values.ts) echoed beyond a short prefix. */
const ECHOED_RUN = OVERSIZE_MARK.repeat(512);

/**
 * Every problem names a source and a field and formats as `kata-ts: <source>: <field>: <what>`:
 * one line (issue 17 #7: no raw control character), at most MAX_ERROR_LINE_CHARS, and never more
 * than a short prefix of an oversize value (#5).
 */
function assertNamedProblems(e: PlanError): void {
  if (e.kind !== 'plan-error' || e.problems.length === 0)
    throw new Error(`not a plan error with problems: ${JSON.stringify(e)}`);
  const lines = formatPlanError(e);
  e.problems.forEach((p, i) => {
    if (typeof p.source !== 'string' || p.source === '')
      throw new Error(`problem without source: ${JSON.stringify(p)}`);
    if (typeof p.field !== 'string' || p.field === '')
      throw new Error(`problem without field: ${JSON.stringify(p)}`);
    const line = lines[i]!;
    const prefix = escapeControl(`kata-ts: ${p.source}: ${p.field}: `).slice(
      0,
      MAX_ERROR_LINE_CHARS - 64,
    );
    if (!line.startsWith(prefix) || line.length === prefix.length)
      throw new Error(`badly formatted: ${JSON.stringify(line.slice(0, 300))}`);
    if (RAW_CONTROL.test(line))
      throw new Error(`raw control character in ${JSON.stringify(line.slice(0, 300))}`);
    if (line.length > MAX_ERROR_LINE_CHARS)
      throw new Error(`line of ${line.length} characters: ${JSON.stringify(line.slice(0, 300))}`);
    if (line.includes(ECHOED_RUN))
      throw new Error(`an oversize value is echoed: ${JSON.stringify(line.slice(0, 300))}`);
  });
}

interface Bundle {
  readonly id: string;
  readonly shape: SpecShape;
  readonly rootfs: BundleInput['rootfsMounts'];
  readonly repeat: number;
}

const bundle = (count: number, hostile = true) =>
  fc.record({
    id: hostile ? containerId : fc.stringMatching(/^c[a-z0-9]{1,8}$/),
    shape: specShape(count, hostile),
    rootfs: hostile ? rootfsMounts : fc.constant(undefined),
    repeat: hostile ? fc.constantFrom(1, 1, 1, 1, 1, 1, 1, 1, 1, 40) : fc.constant(1),
  });

const planInput = fc.record({
  edits: fc.array(
    fc.oneof({ weight: 8, arbitrary: usefulEdit }, { weight: 1, arbitrary: configEdit }),
    { maxLength: 4 },
  ),
  sandbox: bundle(6),
  containers: fc.oneof(
    { weight: 30, arbitrary: fc.array(bundle(4), { maxLength: 4 }) },
    { weight: 1, arbitrary: fc.array(bundle(1), { minLength: 60, maxLength: 120 }) },
  ),
  host: hostFactsArb(true),
});

/** Parses one generated bundle; a parse failure is checked and ends the run. */
function parseBundle(b: Bundle, sandboxId: string): OciSpec | null {
  const shape =
    b.repeat > 1
      ? { ...b.shape, mounts: Array.from({ length: b.repeat }, () => b.shape.mounts).flat() }
      : b.shape;
  const spec = parseOciSpec(specText(shape, sandboxId), `/bundles/${b.id}/config.json`);
  if (spec.isErr()) {
    assertNamedProblems(spec.error);
    return null;
  }
  return spec.value;
}

const int = (text: string | undefined): number | undefined =>
  text === undefined || text === '' ? undefined : Number(text);

/** Static sizing request as vectors §5.4 defines it: pod sandbox annotations or a single container's limits. */
function staticRequest(r: ResourcePlan, spec: OciSpec): StaticRequest {
  const type = r.containers[0]!.type;
  if (type === 'pod_sandbox') {
    const a = spec.annotations;
    const [quota, period, memoryBytes] = [
      int(a['io.kubernetes.cri.sandbox-cpu-quota']),
      int(a['io.kubernetes.cri.sandbox-cpu-period']),
      int(a['io.kubernetes.cri.sandbox-memory']),
    ];
    return {
      ...(quota !== undefined ? { quota } : {}),
      ...(period !== undefined ? { period } : {}),
      ...(memoryBytes !== undefined ? { memoryBytes } : {}),
    };
  }
  if (type !== 'single_container') return {};
  const cpu = spec.linux.resources.cpu;
  const limit = spec.linux.resources.memory?.limit;
  return {
    ...(cpu?.quota !== undefined ? { quota: cpu.quota } : {}),
    ...(cpu?.period !== undefined ? { period: cpu.period } : {}),
    ...(limit !== undefined ? { memoryBytes: limit } : {}),
  };
}

const same = (what: string, got: unknown, want: unknown): void => {
  if (JSON.stringify(got) !== JSON.stringify(want))
    throw new Error(`${what} ${JSON.stringify(got)} != expected ${JSON.stringify(want)}`);
};

/** Adding containers never shrinks the VM: counts start at boot and never go down. */
function checkNeverShrinks(r: ResourcePlan): void {
  let [cpus, mem] = [r.vcpus.boot, r.memoryMiB];
  for (const c of r.containers) {
    if (c.vcpusAfter < cpus || c.memoryMiBAfter < mem)
      throw new Error(
        `shrinks: ${cpus} vCPUs/${mem} MiB → ${c.vcpusAfter}/${c.memoryMiBAfter} at ${c.id}`,
      );
    [cpus, mem] = [c.vcpusAfter, c.memoryMiBAfter];
  }
}

/** vCPUs and memory against the exact model (vectors §5.1, §5.4). */
function checkSizing(input: PlanInput, r: ResourcePlan): void {
  checkNeverShrinks(r);
  const applied = applyConfigAnnotations(
    input.config,
    input.sandbox.spec.annotations,
    'x',
  )._unsafeUnwrap().config;
  const hv = applied.hypervisor;
  const hostMax = Math.max(input.host.hostCpus, 1);
  const def = decimal(hv.defaultVcpus);
  const overhead = decimal(hv.overheadVcpus);
  if (def === null || overhead === null)
    throw new Error(`planned with vCPUs ${JSON.stringify([hv.defaultVcpus, hv.overheadVcpus])}`);
  const all = [input.sandbox, ...input.containers];
  if (applied.runtime.staticSandboxResourceMgmt) {
    const fixed = expectedStatic(
      {
        def,
        overhead,
        defaultMemoryMiB: hv.defaultMemoryMiB,
        overheadMemoryMiB: hv.overheadMemoryMiB,
        defaultMaxMemoryMiB: hv.defaultMaxMemoryMiB,
      },
      staticRequest(r, input.sandbox.spec),
    );
    if (fixed === 'zero-memory') throw new Error('planned a sandbox with 0 MiB');
    const max = Number(fixed.max);
    const boot = Math.min(Math.max(Number(ceilOf(fixed.exact)), 1), max);
    same('static vcpus', r.vcpus, { boot, max, exact: `${fixed.exact.n}/${fixed.exact.d}` });
    same(
      'static memory',
      [r.memoryMiB, r.maxMemoryMiB],
      [fixed.memoryMiB, fixed.maxMemoryMiB || input.host.hostMemoryMiB],
    );
    same(
      'static after',
      r.containers.map((c) => [c.vcpusAfter, c.memoryMiBAfter]),
      all.map(() => [boot, fixed.memoryMiB]),
    );
    return;
  }
  const max = hv.defaultMaxVcpus > 0 ? Math.min(hv.defaultMaxVcpus, hostMax) : hostMax;
  const boot = Math.min(Math.max(Number(ceilOf(def)), 1), max);
  same('vcpus', r.vcpus, { boot, max, exact: `${def.n}/${def.d}` });
  const limits = all.map((b) => {
    const cpu = b.spec.linux.resources.cpu;
    return {
      ...(cpu?.quota !== undefined ? { quota: cpu.quota } : {}),
      ...(cpu?.period !== undefined ? { period: cpu.period } : {}),
      ...(cpu?.cpus !== undefined ? { cpus: cpu.cpus } : {}),
    };
  });
  const after = expectedVcpusAfter(def, limits, boot, max);
  if (after === null)
    throw new Error(
      `planned with a cpuset the exact model refuses: ${JSON.stringify(limits.map((l) => l.cpus))}`,
    );
  same(
    'vcpusAfter',
    r.containers.map((c) => c.vcpusAfter),
    after,
  );
  const maxMemoryMiB = hv.defaultMaxMemoryMiB || input.host.hostMemoryMiB;
  same('memory', [r.memoryMiB, r.maxMemoryMiB], [hv.defaultMemoryMiB, maxMemoryMiB]);
  same(
    'memoryMiBAfter',
    r.containers.map((c) => c.memoryMiBAfter),
    expectedMemoryAfter(
      hv.defaultMemoryMiB,
      maxMemoryMiB,
      all.map((b) => b.spec.linux.resources.memory?.limit),
    ),
  );
}

/** One generated input through parse and plan (twice), with every property checked. */
function planAndCheck(v: {
  edits: (readonly [string, string, string])[];
  sandbox: Bundle;
  containers: Bundle[];
  host: HostFacts;
}): void {
  const config = parseKataConfig(configText(v.edits), 'configuration.toml');
  if (config.isErr()) return assertNamedProblems(config.error);
  const specs: OciSpec[] = [];
  for (const b of [v.sandbox, ...v.containers]) {
    const spec = parseBundle(b, v.sandbox.id);
    if (spec === null) return;
    specs.push(spec);
  }
  const toInput = (b: Bundle, i: number): BundleInput => ({
    id: b.id,
    bundleDir: `/bundles/${b.id}`,
    spec: specs[i]!,
    ...(b.rootfs ? { rootfsMounts: b.rootfs } : {}),
  });
  const input = (cfg: KataConfig): PlanInput => ({
    config: cfg,
    configSource: 'configuration.toml',
    sandbox: toInput(v.sandbox, 0),
    containers: v.containers.map((b, i) => toInput(b, i + 1)),
    host: v.host,
    random: sequentialHex(),
  });
  const first = plan(input(config.value.config));
  const again = plan(input(config.value.config));
  if (JSON.stringify(first) !== JSON.stringify(again))
    throw new Error('two plans of the same input differ');
  if (first.isErr()) return assertNamedProblems(first.error);
  const p = first.value;
  const bundles = new Map([v.sandbox, ...v.containers].map((b) => [b.id, `/bundles/${b.id}`]));
  const problems = [...guestPathProblems(p), ...hostWriteProblems(p, bundles)];
  if (problems.length > 0) throw new Error(problems.join('\n'));
  checkSizing(input(config.value.config), p);
  checkRootlessMovesOnlyHostPaths(input(config.value.config), p);
}

/** Another rootless dir moves the host dirs (when rootless) and nothing the guest sees. */
function checkRootlessMovesOnlyHostPaths(input: PlanInput, p: ResourcePlan): void {
  const moved = plan({ ...input, host: { ...input.host, rootlessDir: '/run/user/4242' } });
  if (moved.isErr())
    throw new Error(
      `another rootless dir fails the plan: ${formatPlanError(moved.error).join('; ')}`,
    );
  const m = moved.value;
  const guestView = (x: ResourcePlan) =>
    JSON.stringify([
      x.createSandbox,
      x.containers.map((c) => [
        c.createContainer,
        c.rootfs.guestPath,
        c.copies.map((k) => k.guestPath),
        c.sharedFsBinds.map((b) => b.guestPath),
      ]),
    ]);
  if (guestView(m) !== guestView(p))
    throw new Error('the rootless dir changed what the guest sees');
  if (p.rootlessDir === null) {
    if (JSON.stringify(m) !== JSON.stringify(p))
      throw new Error('the rootless dir changed a plan that is not rootless');
  } else if (!Object.values(m.hostDirs).every((d) => d.startsWith('/run/user/4242/run/'))) {
    throw new Error(`host dirs not below the new rootless dir: ${JSON.stringify(m.hostDirs)}`);
  }
}

test('plan never throws; it plans safely or names the bad field', (t) => {
  check(t, planInput, runs(500), planAndCheck);
});

test('plan with only well-formed inputs mostly succeeds, and then every property holds', (t) => {
  const calm = fc.record({
    edits: fc.array(usefulEdit, { maxLength: 4 }),
    sandbox: fc.record({
      id: fc.constant('sb'),
      shape: specShape(4, false),
      rootfs: fc.constant(undefined),
      repeat: fc.constant(1),
    }),
    containers: fc.array(bundle(3, false), { maxLength: 3 }),
    host: hostFactsArb(false),
  });
  check(t, calm, runs(500), planAndCheck);
});

test('parseOciSpec never throws on random or mangled JSON text', (t) => {
  const example = specText(
    {
      mounts: [],
      annotations: {},
      cpu: null,
      memoryLimit: null,
      devices: [],
      cgroupsPath: null,
      rootPath: 'rootfs',
      extra: null,
      containerType: null,
    },
    'sb',
  );
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.json({ maxDepth: 6 }),
    fc
      .tuple(fc.nat(example.length), fc.nat(40), fc.string({ maxLength: 8 }))
      .map(([at, cut, ins]) => example.slice(0, at) + ins + example.slice(at + cut)),
    fc.integer({ min: 1, max: 20000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
  );
  check(t, text, runs(2000), (s) => {
    const r = parseOciSpec(s, 'config.json');
    if (r.isErr()) assertNamedProblems(r.error);
  });
});

test('parseKataConfig never throws on random or mangled TOML text', (t) => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc
      .tuple(fc.nat(EXAMPLE_CONFIG_TEXT.length), fc.nat(60), fc.string({ maxLength: 10 }))
      .map(
        ([at, cut, ins]) =>
          EXAMPLE_CONFIG_TEXT.slice(0, at) + ins + EXAMPLE_CONFIG_TEXT.slice(at + cut),
      ),
    fc.array(configEdit, { maxLength: 8 }).map(configText),
    fc.integer({ min: 1, max: 5000 }).map((d) => `x = ${'['.repeat(d)}${']'.repeat(d)}\n`),
  );
  check(t, text, runs(2000), (s) => {
    const r = parseKataConfig(s, 'configuration.toml');
    if (r.isErr()) assertNamedProblems(r.error);
  });
});

// Recorded for `make fuzz` and long runs (FUZZ_RUNS or FUZZ_RECORD set), so a plain test run leaves
// bench/results.json alone.
(FUZZ_RUNS > 0 || process.env['FUZZ_RECORD'] ? test.after.always : test.after.always.skip)(
  'write fuzz.plan into bench/results.json',
  () => {
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    const how = FUZZ_RUNS > 0 ? `FUZZ_RUNS=${FUZZ_RUNS}` : 'CI run';
    const note = `fast-check planner properties (plan, parseOciSpec, parseKataConfig; ${how}): ${totals.executions} executions in ${seconds} s, ${totals.failures} failing propert${totals.failures === 1 ? 'y' : 'ies'}`;
    recordFuzzResult('plan', fuzzFigures(totals.executions, totals.failures, seconds, note));
  },
);
