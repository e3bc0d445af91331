// Parsers for single `io.katacontainers.config.*` annotation values, with Kata's semantics and
// messages (kata-types annotations/mod.rs): booleans, integers, memory sizes, vCPUs, kernel
// parameters, initdata (base64 of gzip) and the glob patterns of `valid_hypervisor_paths`.
// Messages show at most a short prefix of a value (ts/input/escape-text.ts).
import { gunzipSync } from 'node:zlib';
import { err, ok } from 'neverthrow';
import { MAX_QEMU_VCPUS } from '../config/config-defaults.js';
import * as rules from '../config/config-rules.js';
import { decodeStandardBase64 } from '../input/base64.js';
import { clipValue, hasControl, quoteValue } from '../input/escape-text.js';

const U32_MAX = 4294967295;

/** Kata reads booleans with Rust's `bool::from_str`: exactly `true` or `false`. */
export function parseBool(value: string): rules.Rule<boolean> {
  const v = value.trim();
  return v === 'true' || v === 'false'
    ? ok(v === 'true')
    : err(`${quoteValue(value)} is not a boolean (true or false)`);
}

export function parseU32(value: string): rules.Rule<number> {
  const v = value.trim();
  const n = /^\+?\d+$/.test(v) ? Number(v) : NaN;
  return Number.isSafeInteger(n) && n <= U32_MAX
    ? ok(n)
    : err(`${quoteValue(value)} is not an integer in [0, ${U32_MAX}]`);
}

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  k: 1e3,
  kb: 1e3,
  ki: 2 ** 10,
  kib: 2 ** 10,
  m: 1e6,
  mb: 1e6,
  mi: 2 ** 20,
  mib: 2 ** 20,
  g: 1e9,
  gb: 1e9,
  gi: 2 ** 30,
  gib: 2 ** 30,
  t: 1e12,
  tb: 1e12,
  ti: 2 ** 40,
  tib: 2 ** 40,
};

/**
 * `default_memory` in MiB. With a unit (`2Gi`, `512MiB`, `1G`) it is converted and truncated to
 * MiB, as runtime-rs does with byte_unit; a bare number is MiB, as in runtime-go and the config
 * key (runtime-rs would read it as bytes and then refuse it as below the minimum).
 */
export function parseMemoryMiB(value: string): rules.Rule<number> {
  const m = /^(\d+(?:\.\d+)?)\s*([A-Za-z]*)$/.exec(value.trim());
  const unit = m?.[2]?.toLowerCase() ?? '';
  const factor =
    unit === '' ? 2 ** 20 : Object.hasOwn(UNIT_BYTES, unit) ? UNIT_BYTES[unit] : undefined;
  if (m === null || factor === undefined)
    return err(`${quoteValue(value)} is not a memory size such as 2048 or 2Gi`);
  const mib = Math.floor((Number(m[1]) * factor) / 2 ** 20);
  if (mib > U32_MAX) return err(`${clipValue(value)} is too large`);
  if (mib < 64)
    return err(`memory specified in annotation ${mib} is less than minimum limitation 64`);
  return ok(mib);
}

/** kata-types BootInfo::replace_kernel_params: new parameters replace existing ones with the same key. */
export function replaceKernelParams(current: string, update: string): string {
  const keyOf = (p: string): string => p.split('=', 1)[0] ?? p;
  const added = update
    .split(' ')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (added.length === 0) return current;
  const replaced = new Set(added.map(keyOf));
  const kept = current
    .split(' ')
    .map((p) => p.trim())
    .filter((p) => p !== '' && !replaced.has(keyOf(p)));
  return [...kept, ...added].join(' ');
}

/**
 * The `kernel_params` annotation, merged into the config's as Kata does. Kata takes any text;
 * kata-ts refuses control characters: the kernel splits parameters on any whitespace (a newline
 * too) while the by-key replacement splits on spaces only, so "quiet\ninit=/x" would slip a
 * parameter past the replacement.
 */
export function kernelParamsText(value: string): rules.Rule<string> {
  return hasControl(value)
    ? err(`${quoteValue(value)} contains a control character; separate parameters with spaces`)
    : ok(value);
}

/**
 * Decompressed initdata cap. The reference has none, so a small gzip bomb in one annotation
 * (~1000:1) made the planner allocate hundreds of MiB; initdata documents are a few KiB.
 */
export const MAX_INITDATA_BYTES = 4 * 1024 * 1024;

/**
 * Decodes `cc_init_data` (base64 STANDARD of gzip of TOML) to the raw TOML text, not re-serialised
 * (kata-types initdata.rs `add_hypervisor_initdata_overrides` at HEAD). "" stays "".
 */
export function decodeInitdataAnnotation(value: string): rules.Rule<string> {
  if (value === '') return ok('');
  const compressed = decodeStandardBase64(value);
  if (compressed === null) return err('base64 decode: not padded standard base64');
  let gz: Buffer;
  try {
    gz = gunzipSync(compressed, { maxOutputLength: MAX_INITDATA_BYTES });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      return err(
        `gz decoder failed: initdata larger than ${MAX_INITDATA_BYTES} bytes once decompressed`,
      );
    return err(`gz decoder failed: ${e instanceof Error ? clipValue(e.message) : 'not gzip data'}`);
  }
  try {
    return ok(new TextDecoder('utf-8', { fatal: true }).decode(gz));
  } catch {
    return err('gz decoder failed: stream did not contain valid UTF-8');
  }
}

/** `default_vcpus` as exact decimal text, with Kata's annotation message for too many vCPUs. */
export function annotationVcpus(value: string): rules.Rule<string> {
  const v = value.trim();
  if (Number(v) > MAX_QEMU_VCPUS)
    return err(
      `Vcpus specified in annotation ${clipValue(v)} is more than maximum limitation ${MAX_QEMU_VCPUS}`,
    );
  return rules.vcpuDecimalText(v);
}

const escapeOutside = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
const escapeInside = (c: string) => c.replace(/[\\\]\[^-]/g, '\\$&');

/** `[...]` / `[!...]` starting at `open` → a regex class and the index after `]`; Err when unclosed or a range is reversed. */
function globClass(
  chars: readonly string[],
  open: number,
): rules.Rule<{ regex: string; next: number }> {
  let j = open + 1;
  const negate = chars[j] === '!' || chars[j] === '^';
  if (negate) j++;
  const start = j;
  if (chars[j] === ']') j++; // a leading `]` is literal, as in glob(3)
  while (j < chars.length && chars[j] !== ']') j++;
  if (j >= chars.length) return err('unclosed character class');
  const body = chars.slice(start, j);
  let cls = '';
  for (let k = 0; k < body.length; k++) {
    if (body[k + 1] === '-' && k + 2 < body.length) {
      if (body[k]!.codePointAt(0)! > body[k + 2]!.codePointAt(0)!)
        return err(`reversed range ${body[k]}-${body[k + 2]}`);
      cls += `${escapeInside(body[k]!)}-${escapeInside(body[k + 2]!)}`;
      k += 2;
    } else cls += escapeInside(body[k]!);
  }
  return ok({ regex: negate ? `[^/${cls}]` : `[${cls}]`, next: j + 1 });
}

/**
 * glob(3)-style pattern (`*`, `?`, `[a-z]`, `[!x]`) → anchored RegExp. Err for a pattern glob
 * refuses (an unclosed `[`, a reversed range): such a pattern allows nothing, as in kata-types
 * `validate_path_pattern`, instead of throwing while the regex is built.
 */
export function globToRegExp(pattern: string): rules.Rule<RegExp> {
  const chars = [...pattern];
  let re = '';
  for (let i = 0; i < chars.length;) {
    const c = chars[i]!;
    if (c === '[') {
      const cls = globClass(chars, i);
      if (cls.isErr()) return err(`invalid glob pattern ${quoteValue(pattern)}: ${cls.error}`);
      re += cls.value.regex;
      i = cls.value.next;
      continue;
    }
    re += c === '*' ? '[^/]*' : c === '?' ? '[^/]' : escapeOutside(c);
    i++;
  }
  return ok(new RegExp(`^${re}$`, 'u'));
}
