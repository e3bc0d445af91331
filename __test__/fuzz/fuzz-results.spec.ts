// The fuzz summary writer changes only its own `fuzz.<target>` key of results.json.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { fuzzFigures, recordFuzzResult } from './fuzz-results.js';

const figures = fuzzFigures(10, 0, 2, 'n');

function scratch(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-fuzz-results-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'results.json');
}

test('other figures survive and keys stay sorted', (t) => {
  const file = scratch(t);
  writeFileSync(
    file,
    JSON.stringify({
      'vcpu.calc': { ours: 1 },
      'fuzz.ttrpc_reader': { executions: 5, failures: 0 },
      'fuzz.plan': { executions: 1 },
    }),
  );
  t.true(recordFuzzResult('plan', figures, file));
  const out = JSON.parse(readFileSync(file, 'utf8'));
  t.deepEqual(Object.keys(out), ['fuzz.plan', 'fuzz.ttrpc_reader', 'vcpu.calc']);
  t.deepEqual(out['fuzz.plan'], figures);
  t.deepEqual(out['fuzz.ttrpc_reader'], { executions: 5, failures: 0 });
});

test('a missing file is created', (t) => {
  const file = scratch(t);
  t.true(recordFuzzResult('plan', figures, file));
  t.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { 'fuzz.plan': figures });
});

test('a file that is not a JSON object is left alone', (t) => {
  const file = scratch(t);
  writeFileSync(file, '{ torn');
  t.false(recordFuzzResult('plan', figures, file));
  t.is(readFileSync(file, 'utf8'), '{ torn');
});

test('figures carry executions per second as the bench value', (t) => {
  t.deepEqual(fuzzFigures(300, 1, 2, 'x'), {
    executions: 300,
    failures: 1,
    crashes: 1,
    seconds: 2,
    kind: 'absolute',
    ours: 150,
    peer: null,
    ratio: null,
    unit: 'exec/s',
    note: 'x',
  });
});
