// The import graph of ts/ points one way: config/spec → plan → apply/qemu/agent → lifecycle →
// cli/shim. Every import of every ts/ file is read with the TypeScript compiler's pre-processor
// (static imports, `import type`, re-exports and dynamic `import()` alike) and mapped to its
// module: a top-level directory of ts/, or the base files at ts/ itself. An import may only go
// to a module in a strictly lower layer (same-layer siblings do not import each other), and the
// module graph has no cycle. The test logs the layering with the edges that exist.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import ts from 'typescript';
import { repoRoot } from '../cli/cli-harness.js';

/** Lowest first. `ts` = the base files at ts/ (paths, errors, native, log). */
const LAYERS: readonly (readonly string[])[] = [
  // Reading and quoting hostile input (size caps, escaping, safe file reads); imports nothing of ts/.
  ['ts/input'],
  ['ts', 'ts/gen'],
  ['ts/config'],
  ['ts/spec'],
  ['ts/plan'],
  ['ts/apply', 'ts/agent', 'ts/qemu', 'ts/host'],
  // rootless launches QEMU through qemu's launcher type; sync sends through the agent client.
  // network: the pod netns taps (native) handed to QEMU's launcher, the guest told through the agent.
  ['ts/rootless', 'ts/sync', 'ts/network'],
  ['ts/lifecycle', 'ts/guest'],
  ['ts/cli', 'ts/shim'],
  // The package's public API module (ts/index.ts) re-exports from every layer.
  ['ts/index.ts'],
];

const tsDir = path.join(repoRoot, 'ts');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The module a file under ts/ belongs to. */
function moduleOf(file: string): string {
  const rel = path.relative(tsDir, file).split(path.sep);
  if (rel.length === 1) return rel[0] === 'index.ts' ? 'ts/index.ts' : 'ts';
  return `ts/${rel[0]}`;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly file: string;
  readonly specifier: string;
}

/** Every import between two different modules of ts/ (imports of packages and of the addon are not edges). */
function moduleEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(tsDir)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = path.resolve(path.dirname(file), ref.fileName);
      if (!target.startsWith(`${tsDir}${path.sep}`)) continue;
      const from = moduleOf(file);
      const to = moduleOf(target.replace(/\.js$/, '.ts'));
      if (from !== to)
        edges.push({ from, to, file: path.relative(repoRoot, file), specifier: ref.fileName });
    }
  }
  return edges;
}

const rank = new Map(LAYERS.flatMap((mods, i) => mods.map((m) => [m, i] as const)));

/** Strongly connected components with more than one module (Tarjan). */
function cycles(edges: readonly Edge[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) next.set(e.from, (next.get(e.from) ?? new Set()).add(e.to));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const out: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) out.push(scc.sort());
    }
  };
  for (const v of next.keys()) if (!index.has(v)) visit(v);
  return out;
}

function layering(edges: readonly Edge[], present: ReadonlySet<string>): string {
  const targets = (m: string) =>
    [...new Set(edges.filter((e) => e.from === m).map((e) => e.to))].sort();
  return [...LAYERS]
    .map((mods, i) => {
      const rows = mods
        .filter((m) => present.has(m))
        .map((m) => `    ${m.padEnd(14)} → ${targets(m).join(', ') || '(nothing in ts/)'}`);
      return [`  layer ${i}`, ...rows].join('\n');
    })
    .reverse()
    .join('\n');
}

const edges = moduleEdges();

test('the import graph of ts/ has the expected modules and prints its layering', (t) => {
  const modules = new Set(sourceFiles(tsDir).map(moduleOf));
  t.log(`\n${layering(edges, modules)}`);
  const unplaced = [...modules].filter((m) => !rank.has(m));
  t.deepEqual(
    unplaced,
    [],
    'every module of ts/ has a layer in __test__/architecture/layers.spec.ts',
  );
  t.true(modules.has('ts/plan') && modules.has('ts/lifecycle'), 'the walk found the sources');
  t.true(edges.length > 50, `found ${edges.length} cross-module imports`);
});

test('every import goes to a strictly lower layer', (t) => {
  const upward = edges
    .filter((e) => rank.has(e.from) && rank.has(e.to) && rank.get(e.to)! >= rank.get(e.from)!)
    .map(
      (e) =>
        `${e.file} imports ${e.specifier} (${e.from}, layer ${rank.get(e.from)} → ${e.to}, layer ${rank.get(e.to)})`,
    );
  t.deepEqual(upward, []);
});

test('no cycle between modules', (t) => {
  t.deepEqual(cycles(edges), []);
});

test('the cycle check finds a cycle when there is one', (t) => {
  const e = (from: string, to: string): Edge => ({ from, to, file: 'x', specifier: 'y' });
  t.deepEqual(
    cycles([
      e('ts/plan', 'ts/rootless'),
      e('ts/rootless', 'ts/qemu'),
      e('ts/qemu', 'ts/plan'),
      e('ts/cli', 'ts/plan'),
    ]),
    [['ts/plan', 'ts/qemu', 'ts/rootless']],
  );
});
