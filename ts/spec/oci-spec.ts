// The OCI runtime spec (bundle config.json) as a typed subset. Fields kata-ts does not read are
// kept as they are (loose objects), because the spec is later forwarded to the agent.
import path from 'node:path';
import { err, ok, ResultAsync, type Result } from 'neverthrow';
import { z } from 'zod';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { issueMessage, jsonErrorField, parseJsonText } from '../input/json-text.js';
import { MAX_SPEC_FILE_BYTES } from '../input/limits.js';
import { readInputFile } from '../input/read-input-file.js';
import { vmRefusals } from './vm-refusals.js';

const BEYOND_2_53 = 'is beyond ±2^53 and cannot be represented exactly';

// JSON numbers become JS doubles, so int64/uint64 fields are exact only within ±2^53; larger
// values are refused rather than silently rounded.
const int64 = z
  .number({ error: 'expected an integer' })
  .refine(Number.isInteger, { error: 'expected an integer', abort: true })
  .refine(Number.isSafeInteger, { error: BEYOND_2_53, abort: true });
const uint64 = int64.refine((n) => n >= 0, { error: 'must not be negative' });
const uint32 = uint64.refine((n) => n <= 4294967295, { error: 'must be at most 4294967295' });
const text = z.string({ error: 'expected a string' });
const flag = z.boolean({ error: 'expected a boolean' });
const strings = z.array(text, { error: 'expected an array of strings' });
const absolute = text.refine((p) => p.startsWith('/'), { error: 'must be an absolute path' });

const User = z.looseObject({
  uid: uint32,
  gid: uint32,
  additionalGids: z.array(uint32, { error: 'expected an array of integers' }).optional(),
});

const Process = z.looseObject({
  terminal: flag.optional(),
  user: User,
  args: strings,
  env: strings.optional(),
  cwd: absolute,
});

const Root = z.looseObject({
  path: text.refine((p) => p !== '', { error: 'must not be empty' }),
  readonly: flag.optional(),
});

const Mount = z.looseObject({
  destination: absolute,
  type: text.optional(),
  source: text.optional(),
  options: strings.optional(),
});

const Cpu = z.looseObject({
  shares: uint64.optional(),
  quota: int64.optional(),
  period: uint64.optional(),
  cpus: text.optional(),
  mems: text.optional(),
});

const Memory = z.looseObject({
  limit: int64.optional(),
  reservation: int64.optional(),
  swap: int64.optional(),
});

const DeviceRule = z.looseObject({
  allow: flag,
  type: text.optional(),
  major: int64.optional(),
  minor: int64.optional(),
  access: text.optional(),
});

const Resources = z.looseObject({
  cpu: Cpu.optional(),
  memory: Memory.optional(),
  pids: z.looseObject({ limit: int64 }).optional(),
  devices: z.array(DeviceRule, { error: 'expected an array' }).optional(),
});

const Device = z.looseObject({
  path: absolute,
  type: z.enum(['c', 'b', 'u', 'p'], { error: 'expected one of c, b, u, p' }),
  major: int64,
  minor: int64,
  fileMode: uint32.optional(),
  uid: uint32.optional(),
  gid: uint32.optional(),
});

const Linux = z.looseObject({
  cgroupsPath: text.optional(),
  resources: Resources.default({}),
  devices: z.array(Device, { error: 'expected an array' }).default([]),
  namespaces: z
    .array(z.looseObject({ type: text, path: text.optional() }), { error: 'expected an array' })
    .optional(),
  maskedPaths: strings.optional(),
  readonlyPaths: strings.optional(),
});

const OciSpecSchema = z.looseObject({
  ociVersion: text,
  process: Process.optional(),
  root: Root,
  hostname: text.optional(),
  mounts: z.array(Mount, { error: 'expected an array' }).default([]),
  annotations: z.record(z.string(), text, { error: 'expected an object of strings' }).default({}),
  linux: Linux.default({ resources: {}, devices: [] }),
});

/** A bundle's config.json: the fields kata-ts reads, typed; every other field kept as is. */
export type OciSpec = z.output<typeof OciSpecSchema>;
export type OciMount = OciSpec['mounts'][number];
export type OciLinuxDevice = OciSpec['linux']['devices'][number];

/** `mounts[2].destination` from a zod/JSON path. */
function fieldPath(parts: readonly PropertyKey[]): string {
  return parts.reduce<string>(
    (acc, p) =>
      typeof p === 'number' ? `${acc}[${p}]` : acc === '' ? String(p) : `${acc}.${String(p)}`,
    '',
  );
}

function valueAt(root: unknown, parts: readonly PropertyKey[]): unknown {
  return parts.reduce<unknown>(
    (v, p) =>
      typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[p] : undefined,
    root,
  );
}

function parseJson(text: string, source: string): Result<unknown, PlanError> {
  return parseJsonText(text).mapErr((e) =>
    planError(problem('spec', source, jsonErrorField(e), '', e.message)),
  );
}

/** Parses a config.json text; `source` names the file in problems. Reports every problem found. */
export function parseOciSpec(text: string, source: string): Result<OciSpec, PlanError> {
  return parseJson(text, source).andThen((json) => {
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      return err(planError(problem('spec', source, '(root)', '', 'expected a JSON object')));
    }
    const parsed = OciSpecSchema.safeParse(json);
    if (parsed.success) {
      const refused = vmRefusals(parsed.data, source);
      return refused.length === 0 ? ok(parsed.data) : err(planError(...refused));
    }
    const problems: Problem[] = parsed.error.issues.map((issue) => {
      const field = fieldPath(issue.path) || '(root)';
      const value = valueAt(json, issue.path);
      const what =
        value === undefined && issue.code === 'invalid_type' ? 'is required' : issueMessage(issue);
      return problem('spec', source, field, value ?? '', what);
    });
    return err(planError(...problems));
  });
}

/**
 * Reads and parses `<dir>/config.json`; `bundleDir` is `dir` made absolute. The file is read with
 * readInputFile: a regular file, not a symlink (whoever made the bundle chose its names), at most
 * MAX_SPEC_FILE_BYTES.
 */
export function readOciBundle(
  dir: string,
): ResultAsync<{ spec: OciSpec; bundleDir: string }, PlanError> {
  const bundleDir = path.resolve(dir);
  const file = path.join(bundleDir, 'config.json');
  const read = readInputFile(file, {
    maxBytes: MAX_SPEC_FILE_BYTES,
    limitName: 'MAX_SPEC_FILE_BYTES',
    noFollow: true,
  }).mapErr((e) =>
    planError(
      problem(
        'spec',
        file,
        'config.json',
        '',
        e.kind === 'missing' ? `no config.json in bundle ${bundleDir}` : e.what,
      ),
    ),
  );
  return new ResultAsync(
    Promise.resolve(
      read.andThen((text) => parseOciSpec(text, file).map((spec) => ({ spec, bundleDir }))),
    ),
  );
}

/** `linux.resources` of a spec, typed; other fields kept as they are. */
export type OciLinuxResources = OciSpec['linux']['resources'];

/**
 * The OCI LinuxResources JSON containerd's Task Update carries (its Any
 * `types.containerd.io/opencontainers/runtime-spec/1/LinuxResources`); `source` names it in problems.
 */
export function parseLinuxResources(
  text: string,
  source: string,
): Result<OciLinuxResources, PlanError> {
  return parseJson(text, source).andThen((json) => {
    const parsed = Resources.safeParse(json);
    if (parsed.success) return ok(parsed.data);
    return err(
      planError(
        ...parsed.error.issues.map((issue) =>
          problem(
            'spec',
            source,
            fieldPath(['resources', ...issue.path]),
            valueAt(json, issue.path) ?? '',
            issueMessage(issue),
          ),
        ),
      ),
    );
  });
}
