// `make bench`: runs every bench/*.bench.ts, prints a table and a summary, and writes
// bench/results.json. Run some files only with `npx tsx bench/run.ts vcpu sync`.
// Each entry has a `kind` (bench/metric.ts): only `peer` figures compare ours with another
// program; `internal` (ours vs ours, another implementation), `scaling` (ours at two sizes) and
// `absolute` (no comparison) are listed apart and never counted as beating or trailing a peer.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kindOf, type Metric, type MetricKind, type Metrics } from './metric.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = new Set(process.argv.slice(2));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.size === 0 || only.has(f.replace(/\.bench\.ts$/, '')))
  .sort();

const resultsFile = `${dir}results.json`;
// Keep figures of benchmarks not run this time (a partial run updates only its own keys); a full
// run starts afresh but keeps the `fuzz.*` entries, which `make fuzz` writes. Entries written
// before kinds existed get one (peer 0 → absolute).
const previous: Record<string, Partial<Metric>> = existsSync(resultsFile)
  ? JSON.parse(readFileSync(resultsFile, 'utf8'))
  : {};
const kept = Object.entries(previous).filter(([k]) => only.size > 0 || k.startsWith('fuzz.'));
const results: Record<string, Partial<Metric>> = Object.fromEntries(
  kept.map(([k, m]) => {
    const kind = kindOf(m);
    return [k, kind === 'absolute' ? { ...m, kind, peer: null, ratio: null } : { ...m, kind }];
  }),
);

const measured: Metrics = {};
for (const file of files) {
  const mod = (await import(`./${file}`)) as { run: () => Promise<Metrics> };
  process.stderr.write(`bench: ${file}\n`);
  Object.assign(measured, await mod.run());
}
// A partial run merges into the file as it is now, not as it was when the run started: other
// benchmarks may have written their figures meanwhile (several sessions share the tree).
if (only.size > 0 && existsSync(resultsFile)) {
  Object.assign(results, JSON.parse(readFileSync(resultsFile, 'utf8')));
}
Object.assign(results, measured);

const rows = Object.entries(results).sort(([a], [b]) => a.localeCompare(b));
const fmt = (v: number | null | undefined) =>
  typeof v !== 'number' || !Number.isFinite(v)
    ? '-'
    : Math.abs(v) >= 100
      ? Math.round(v).toLocaleString('en-US')
      : v.toPrecision(3);
const table = [
  ['metric', 'kind', 'ours', 'peer', 'ratio', 'unit', 'note'],
  ...rows.map(([k, m]) => [
    k,
    kindOf(m),
    fmt(m.ours),
    fmt(m.peer),
    typeof m.ratio === 'number' ? m.ratio.toFixed(2) : '-',
    m.unit ?? '',
    m.note ?? '',
  ]),
];
const last = table[0]!.length - 1;
const widths = table[0]!.map((_, i) =>
  Math.max(...table.map((r) => (i === last ? 0 : r[i]!.length))),
);
for (const r of table)
  process.stdout.write(`${r.map((c, i) => (i === last ? c : c.padEnd(widths[i]!))).join('  ')}\n`);

// The summary: a figure "beats a peer" only when it is a measured peer comparison with a ratio
// above 1 by more than the noise band (EVEN: within 3% counts as even).
const EVEN = 0.03;
const byKind = (kind: MetricKind) => rows.filter(([, m]) => kindOf(m) === kind);
const peers = byKind('peer').filter(([, m]) => typeof m.ratio === 'number' && m.ratio > 0);
const unmeasured = byKind('peer').length - peers.length;
const better = peers.filter(([, m]) => m.ratio! > 1 + EVEN).map(([k]) => k);
const worse = peers.filter(([, m]) => m.ratio! < 1 - EVEN).map(([k]) => k);
const even = peers.length - better.length - worse.length;
process.stdout.write(
  [
    '',
    `against a peer: ${peers.length} figure(s): ours better in ${better.length}, worse in ${worse.length}, even (within ${EVEN * 100}%) in ${even}` +
      (unmeasured > 0 ? ` (${unmeasured} not measured this run)` : ''),
    ...(worse.length > 0 ? [`  worse: ${worse.join(', ')}`] : []),
    `not counted against a peer: ${byKind('internal').length} internal (ours vs ours), ${byKind('scaling').length} scaling, ${byKind('absolute').length} absolute`,
    '',
  ].join('\n'),
);
writeFileSync(resultsFile, `${JSON.stringify(Object.fromEntries(rows), null, 2)}\n`);
process.stdout.write(`wrote ${resultsFile}\n`);
