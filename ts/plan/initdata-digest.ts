// Initdata validation and digest (reference: kata-types `initdata.rs`; spec:
// confidential-containers/trustee `kbs/docs/initdata.md`). The digest is over the raw TOML text
// as given, never a re-serialisation, so it matches what the guest measures.
import { createHash } from 'node:crypto';
import { err, ok, type Result } from 'neverthrow';
import { parse as parseToml } from 'smol-toml';
import { planError, problem, type PlanError, type Problem } from '../errors.js';

export const INITDATA_VERSION = '0.1.0';
export const INITDATA_ALGORITHMS = ['sha256', 'sha384', 'sha512'] as const;
export type InitdataAlgorithm = (typeof INITDATA_ALGORITHMS)[number];

/** Confidential-guest platform the digest is shaped for. */
export type ProtectedPlatform = 'none' | 'tdx' | 'snp' | 'cca' | 'se';

/** Digest length each platform's field takes (TDX mrconfigid 48, SNP host_data 32, …); null = natural. */
export const PLATFORM_DIGEST_BYTES: Readonly<Record<ProtectedPlatform, number | null>> = {
  none: null,
  tdx: 48,
  snp: 32,
  cca: 64,
  se: 256,
};

export interface Initdata {
  readonly version: typeof INITDATA_VERSION;
  readonly algorithm: InitdataAlgorithm;
  /** `[data]`: file name → content, strings only (the reference's `HashMap<String, String>`). */
  readonly data: Readonly<Record<string, string>>;
}

/** Where the initdata came from, for messages. */
export interface InitdataOrigin {
  /** `hypervisor.qemu.initdata`, or the annotation key `io.katacontainers.config.hypervisor.cc_init_data`. */
  readonly field: string;
  /** Config file or bundle the value was read from. */
  readonly source: string;
}

export const CONFIG_INITDATA_ORIGIN: InitdataOrigin = {
  field: 'hypervisor.qemu.initdata',
  source: 'configuration.toml',
};

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function parseTable(
  toml: string,
  origin: InitdataOrigin,
): Result<Record<string, unknown>, Problem> {
  try {
    return ok(parseToml(toml));
  } catch (e) {
    const why = e instanceof Error ? e.message.split('\n')[0] : String(e);
    return err(problem('config', origin.source, origin.field, '', `invalid initdata TOML: ${why}`));
  }
}

function checkVersion(
  doc: Record<string, unknown>,
  bad: (what: string, value?: unknown) => Problem,
): Problem[] {
  const v = doc['version'];
  if (v === undefined) return [bad('missing field `version`')];
  if (v !== INITDATA_VERSION)
    return [bad(`unsupported version: ${String(v)}, expected: ${INITDATA_VERSION}`, v)];
  return [];
}

function checkAlgorithm(
  doc: Record<string, unknown>,
  bad: (what: string, value?: unknown) => Problem,
): Problem[] {
  const a = doc['algorithm'];
  if (a === undefined) return [bad('missing field `algorithm`')];
  if (!(INITDATA_ALGORITHMS as readonly unknown[]).includes(a)) {
    return [
      bad(
        `unsupported algorithm: ${String(a)}, supported algorithms: ${INITDATA_ALGORITHMS.join(', ')}`,
        a,
      ),
    ];
  }
  return [];
}

function checkData(
  doc: Record<string, unknown>,
  bad: (what: string, value?: unknown) => Problem,
): Problem[] {
  const d = doc['data'];
  if (d === undefined) return [bad('missing field `data`')];
  if (!isTable(d)) return [bad('`data` must be a table')];
  return Object.entries(d)
    .filter(([, v]) => typeof v !== 'string')
    .map(([k]) => bad(`data.${k} must be a string`));
}

/** Parses and validates initdata TOML; reports every problem found. */
export function parseInitdata(
  toml: string,
  origin: InitdataOrigin = CONFIG_INITDATA_ORIGIN,
): Result<Initdata, PlanError> {
  const table = parseTable(toml, origin);
  if (table.isErr()) return err(planError(table.error));
  const doc = table.value;
  const bad = (what: string, value: unknown = ''): Problem =>
    problem('config', origin.source, origin.field, value, what);
  const problems = [...checkVersion(doc, bad), ...checkAlgorithm(doc, bad), ...checkData(doc, bad)];
  if (problems.length > 0) return err(planError(...problems));
  return ok({
    version: INITDATA_VERSION,
    algorithm: doc['algorithm'] as InitdataAlgorithm,
    data: doc['data'] as Record<string, string>,
  });
}

/** Hash of `data` (text as UTF-8) with an initdata algorithm. */
export function calculateDigest(
  algorithm: string,
  data: Uint8Array | string,
): Result<Uint8Array, Problem> {
  if (!(INITDATA_ALGORITHMS as readonly string[]).includes(algorithm)) {
    return err(
      problem(
        'plan',
        'initdata',
        'algorithm',
        algorithm,
        `unsupported Hash algorithm: ${algorithm}`,
      ),
    );
  }
  return ok(new Uint8Array(createHash(algorithm).update(data).digest()));
}

/** Truncates or zero-pads a digest to the platform's length. */
export function adjustDigest(digest: Uint8Array, platform: ProtectedPlatform): Uint8Array {
  const length = PLATFORM_DIGEST_BYTES[platform] ?? digest.length;
  const out = new Uint8Array(length);
  out.set(digest.subarray(0, length));
  return out;
}

/** base64 (standard alphabet, padded) of the platform-shaped digest of the raw TOML text. */
export function initdataDigest(
  rawToml: string,
  algorithm: InitdataAlgorithm,
  platform: ProtectedPlatform,
): string {
  const digest = calculateDigest(algorithm, rawToml)._unsafeUnwrap();
  return Buffer.from(adjustDigest(digest, platform)).toString('base64');
}
