// `make bench`: runs every bench/*.bench.ts, prints a table and writes bench/results.json.
// Run one file with `npx tsx bench/run.ts vcpu`.
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Metrics } from './metric.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const only = new Set(process.argv.slice(2));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => only.size === 0 || only.has(f.replace(/\.bench\.ts$/, '')))
  .sort();

const resultsFile = `${dir}results.json`;
// Keep figures of benchmarks not run this time (a partial run updates only its own keys); a full
// run starts afresh but keeps the `fuzz.*` entries, which `make fuzz` writes.
const previous: Metrics = existsSync(resultsFile) ? JSON.parse(readFileSync(resultsFile, 'utf8')) : {};
const results: Metrics = only.size > 0 ? previous : Object.fromEntries(Object.entries(previous).filter(([k]) => k.startsWith('fuzz.')));

for (const file of files) {
  const mod = (await import(`./${file}`)) as { run: () => Promise<Metrics> };
  process.stderr.write(`bench: ${file}\n`);
  Object.assign(results, await mod.run());
}

const rows = Object.entries(results).sort(([a], [b]) => a.localeCompare(b));
const fmt = (v: number | undefined) =>
  typeof v !== 'number' || !Number.isFinite(v) ? '-' : Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3);
const table = [
  ['metric', 'ours', 'peer', 'ratio', 'unit', 'note'],
  ...rows.map(([k, m]) => [k, fmt(m.ours), fmt(m.peer), typeof m.ratio === 'number' ? m.ratio.toFixed(2) : '-', m.unit ?? '', m.note ?? '']),
];
const widths = table[0]!.map((_, i) => Math.max(...table.slice(0, -0 || undefined).map((r) => (i === 5 ? 0 : r[i]!.length))));
for (const r of table) process.stdout.write(`${r.map((c, i) => (i === 5 ? c : c.padEnd(widths[i]!))).join('  ')}\n`);
writeFileSync(resultsFile, `${JSON.stringify(Object.fromEntries(rows), null, 2)}\n`);
process.stdout.write(`\nwrote ${resultsFile}\n`);
