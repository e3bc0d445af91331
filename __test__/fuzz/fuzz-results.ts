// Writes one `fuzz.<target>` entry into bench/results.json: read, replace only that key, write
// back through a temp file and rename (the way bench/run.ts keeps figures it did not produce), so
// `make fuzz` entries of other targets survive.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RESULTS_FILE = fileURLToPath(new URL('../../bench/results.json', import.meta.url));

/**
 * One fuzz target's figures, shaped like the `make fuzz` entries (and like a bench metric, so the
 * bench table can print it): executions, failing properties (`failures`, also as `crashes`),
 * executions per second as `ours`.
 */
export interface FuzzFigures {
  readonly executions: number;
  readonly failures: number;
  readonly crashes: number;
  readonly seconds: number;
  /** An absolute figure (bench/metric.ts): nothing to compare against. */
  readonly kind: 'absolute';
  readonly ours: number;
  readonly peer: null;
  readonly ratio: null;
  readonly unit: 'exec/s';
  readonly note: string;
}

/** Figures for `executions` runs with `failures` failing properties in `seconds`. */
export function fuzzFigures(
  executions: number,
  failures: number,
  seconds: number,
  note: string,
): FuzzFigures {
  const ours = seconds > 0 ? Math.round(executions / seconds) : 0;
  return {
    executions,
    failures,
    crashes: failures,
    seconds,
    kind: 'absolute',
    ours,
    peer: null,
    ratio: null,
    unit: 'exec/s',
    note,
  };
}

/**
 * Sets `fuzz.<target>` in `file`, keeping every other key; keys stay sorted as bench/run.ts writes
 * them. False (nothing written) when the file exists but is not a JSON object: other figures are
 * never thrown away.
 */
export function recordFuzzResult(
  target: string,
  figures: FuzzFigures,
  file = RESULTS_FILE,
): boolean {
  let results: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return false;
      results = parsed as Record<string, unknown>;
    } catch {
      return false;
    }
  }
  results[`fuzz.${target}`] = figures;
  const sorted = Object.fromEntries(Object.entries(results).sort(([a], [b]) => a.localeCompare(b)));
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(sorted, null, 2)}\n`);
  renameSync(tmp, file);
  return true;
}
