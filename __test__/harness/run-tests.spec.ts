// scripts/run-tests.sh, the `make test` runner, against canned cargo and ava output: the final
// line counts tests only (cargo ignored + ava skip/todo as skipped), checks print on their own
// lines and fail the run without being counted, skipped tests are listed by name, and with
// CI=true a skipped promised suite fails the run. The script runs from a copy in a temp tree
// whose PATH starts with fake cargo/npx/npm (the real ones would build and test everything).
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

const CARGO_OK = `running 3 tests
test a::one ... ok
test a::two ... ignored, needs root: writes cgroups
test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
`;

/** TAP as ava writes it; `cgroupsSkipped` turns one cgroups test into a real skip. */
function tap(cgroupsSkipped: boolean): string {
  const lines = [
    'ok 1 - guest › e2e › boots',
    'ok 2 - guest › minimal-kernel › boots',
    'ok 3 - qemu › guest › boots',
    'ok 4 - lifecycle › guest-run › runs',
    'ok 5 - lifecycle › rootless › rootless',
    'ok 6 - rootless › rootless-user › user',
    'ok 7 - shim › shim-tasks › task',
    'ok 8 - shim › shim-guest › task',
    'ok 9 - shim › shim-protocol › task',
    'ok 10 - lifecycle › shim-commands › create',
    cgroupsSkipped
      ? 'ok 11 - cgroups › fs-v1 › limits [skipped: needs root (euid 0)] # SKIP'
      : 'ok 11 - cgroups › fs-v1 › limits',
    'ok 12 - plan › sizing › one',
    'not ok 13 - plan › sizing › later # TODO',
  ];
  const skip = cgroupsSkipped ? 1 : 0;
  return `TAP version 13\n${lines.join('\n')}\n\n1..13\n# tests ${13 - skip}\n# pass ${12 - skip}\n${skip ? '# skip 1\n' : ''}# fail 1\n`;
}

interface Fakes {
  readonly cargoTest?: string;
  readonly cargoRc?: number;
  readonly tap?: string;
  readonly prettierRc?: number;
}

/** A temp tree with the real runner, stub spec files for the suite globs, and fake tools. */
function tree(t: ExecutionContext, f: Fakes): { root: string; bin: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'kata-ts-run-tests-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(path.join(root, 'scripts'));
  copyFileSync(
    path.join(repoRoot, 'scripts/run-tests.sh'),
    path.join(root, 'scripts/run-tests.sh'),
  );
  writeFileSync(path.join(root, 'scripts/fuzz.sh'), 'exit 0\n');
  for (const spec of [
    'guest/e2e',
    'guest/minimal-kernel',
    'qemu/guest',
    'lifecycle/guest-run',
    'lifecycle/rootless',
    'rootless/rootless-user',
    'shim/shim-tasks',
    'shim/shim-guest',
    'shim/shim-protocol',
    'lifecycle/shim-commands',
    'cgroups/fs-v1',
  ]) {
    mkdirSync(path.join(root, '__test__', path.dirname(spec)), { recursive: true });
    writeFileSync(path.join(root, '__test__', `${spec}.spec.ts`), '');
  }
  const bin = path.join(root, 'fake-bin');
  mkdirSync(bin);
  writeFileSync(path.join(root, 'cargo-test.out'), f.cargoTest ?? CARGO_OK);
  writeFileSync(path.join(root, 'ava.tap'), f.tap ?? tap(false));
  const fake = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`);
    chmodSync(path.join(bin, name), 0o755);
  };
  fake(
    'cargo',
    `[ "$1" = test ] && { cat ${root}/cargo-test.out; exit ${f.cargoRc ?? 0}; }\nexit 0`,
  );
  fake('npx', `[ "$1 $2" = "ava --tap" ] && { cat ${root}/ava.tap; exit 0; }\nexit 0`);
  fake('npm', `[ "$*" = "run --silent format:check" ] && exit ${f.prettierRc ?? 0}\nexit 0`);
  return { root, bin };
}

async function runner(
  t: ExecutionContext,
  f: Fakes,
  env: Record<string, string> = {},
): Promise<{ code: number; lines: string[] }> {
  const { root, bin } = tree(t, f);
  const fullEnv = { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}`, CI: '', ...env };
  return new Promise((resolve) => {
    execFile('bash', [path.join(root, 'scripts/run-tests.sh')], { env: fullEnv }, (e, stdout) => {
      const code = e === null ? 0 : typeof e.code === 'number' ? e.code : -1;
      resolve({ code, lines: stdout.trimEnd().split('\n') });
    });
  });
}

test('the last line counts tests only; checks and skipped tests are on their own lines', async (t) => {
  const r = await runner(t, {});
  t.is(r.code, 0, r.lines.join('\n'));
  // cargo 6 passed + 1 ignored; ava 12 passed + 1 todo (skipped, not failed).
  t.is(r.lines.at(-1), '18 passed, 0 failed, 2 skipped');
  for (const name of ['rustfmt', 'clippy', 'tsc', 'prettier', 'fuzz-smoke'])
    t.true(r.lines.includes(`check ${name}: ok`), name);
  t.true(
    r.lines.includes(
      process.geteuid?.() === 0
        ? 'check harness-runc: ok'
        : 'check harness-runc: skipped (needs root)',
    ),
  );
  t.true(r.lines.includes('  skipped (cargo): a::two [needs root: writes cgroups]'));
  t.true(r.lines.includes('  skipped (ava): plan › sizing › later'));
  t.true(
    r.lines.includes(
      'suite kata-agent: not present yet (kata-agent/*.spec.ts */kata-agent*.spec.ts)',
    ),
  );
});

test('a failed check fails the run without counting as a test', async (t) => {
  const r = await runner(t, { prettierRc: 1 });
  t.is(r.code, 1);
  t.true(r.lines.includes('check prettier: FAIL'));
  t.true(r.lines.includes('failed checks: prettier'));
  t.is(r.lines.at(-1), '18 passed, 0 failed, 2 skipped');
});

test('a skipped promised suite is listed; it fails the run only with CI=true', async (t) => {
  const local = await runner(t, { tap: tap(true) });
  t.is(local.code, 0, local.lines.join('\n'));
  t.true(local.lines.includes('suite cgroups: 1 of 1 tests skipped'));
  t.true(
    local.lines.includes(
      '  skipped (ava): cgroups › fs-v1 › limits [skipped: needs root (euid 0)]',
    ),
  );
  t.is(local.lines.at(-1), '17 passed, 0 failed, 3 skipped');
  const ci = await runner(t, { tap: tap(true) }, { CI: 'true' });
  t.is(ci.code, 1);
  t.true(ci.lines.includes('CI=true: promised suites skipped or missing: cgroups'));
  t.is(ci.lines.at(-1), '17 passed, 0 failed, 3 skipped');
});

test('cargo failing without a result line (a build error) counts as a failure', async (t) => {
  const r = await runner(t, {
    cargoTest: 'error[E0425]: cannot find value `x` in this scope\n',
    cargoRc: 101,
  });
  t.is(r.code, 1);
  t.true(r.lines.includes('cargo test exited 101 without a failed test:'));
  t.is(r.lines.at(-1), '12 passed, 1 failed, 1 skipped');
});
