// Packs the main and platform packages, installs both tarballs into an empty directory with no
// Rust toolchain on PATH, and uses the installed package: the CLI (`--version`, one native call),
// the public API (`import('kata-ts')` plans the shipped example), and checks that nothing shipped
// reads the lifecycle test hooks. Packs dist/ as built (`make test` builds it first).
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { TEST_HOOK_ENV } from '../fixtures/test-hooks.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const version = (await import('../../ts/cli/main.js')).packageVersion();

// PATH without any directory that holds cargo or rustc.
const pathWithoutRust = (process.env['PATH'] ?? '')
  .split(':')
  .filter(
    (dir) => dir && !existsSync(path.join(dir, 'cargo')) && !existsSync(path.join(dir, 'rustc')),
  )
  .join(':');

/** Every regular file below `dir`. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? filesBelow(p) : e.isFile() ? [p] : [];
  });
}

/** Run in the app dir: imports the installed package and plans its shipped example bundle. */
const PLAN_EXAMPLE = `
import { readFileSync } from 'node:fs';
const m = await import('kata-ts');
const root = new URL('../', import.meta.resolve('kata-ts'));
const text = readFileSync(new URL('examples/configuration-qemu.toml', root), 'utf8');
const config = m.parseKataConfig(text, 'configuration-qemu.toml');
if (config.isErr()) throw new Error(m.formatPlanError(config.error).join('\\n'));
const bundle = await m.readOciBundle(new URL('examples/bundle', root).pathname);
if (bundle.isErr()) throw new Error(m.formatPlanError(bundle.error).join('\\n'));
const planned = m.plan({ config: config.value.config, configSource: 'configuration-qemu.toml', sandbox: { id: 'sb-1', bundleDir: 'bundle', spec: bundle.value.spec }, containers: [], host: m.EXAMPLE_HOST_FACTS });
if (planned.isErr()) throw new Error(m.formatPlanError(planned.error).join('\\n'));
const p = planned.value;
console.log(JSON.stringify({ exports: Object.keys(m).sort(), sandboxId: p.sandboxId, vcpus: p.vcpus, memoryMiB: p.memoryMiB, containers: p.containers.map((c) => c.id) }));
`;

test('packed tarballs install and run without a Rust toolchain', async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'kata-ts-pack-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const packDir = path.join(work, 'tarballs');
  await run('bash', [path.join(root, 'scripts/pack.sh'), packDir], { cwd: root });
  const tarballs = readdirSync(packDir).sort();
  t.deepEqual(tarballs, [`kata-ts-${version}.tgz`, `kata-ts-linux-x64-gnu-${version}.tgz`]);

  const app = path.join(work, 'app');
  await run('mkdir', ['-p', app]);
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true }),
  );
  const env = {
    ...process.env,
    PATH: pathWithoutRust,
    npm_config_audit: 'false',
    npm_config_fund: 'false',
  };
  await t.throwsAsync(
    run('cargo', ['--version'], { env }),
    undefined,
    'cargo must not be reachable',
  );
  await run('npm', ['install', '--no-save', ...tarballs.map((f) => path.join(packDir, f))], {
    cwd: app,
    env,
    timeout: 180_000,
  });

  const installed = path.join(app, 'node_modules');
  t.true(
    existsSync(path.join(installed, 'kata-ts-linux-x64-gnu/kata-ts.linux-x64-gnu.node')),
    'prebuilt binary installed',
  );
  const front = path.join(installed, 'kata-ts-linux-x64-gnu/kata-ts-shim-front');
  t.true(
    existsSync(front) && (statSync(front).mode & 0o111) !== 0,
    'shim front installed, executable',
  );
  t.false(
    existsSync(path.join(installed, 'kata-ts/kata-ts.linux-x64-gnu.node')),
    'main package carries no binary',
  );
  t.false(existsSync(path.join(installed, 'kata-ts/ts')), 'no TypeScript sources published');

  const bin = path.join(app, 'node_modules/.bin/kata-ts');
  const v = await run(bin, ['--version'], { env, cwd: app });
  t.is(v.stdout.trim(), version);
  const vcpus = await run(bin, ['vcpus', '--default', '0.5', '250000/1000000'], { env, cwd: app });
  t.deepEqual(JSON.parse(vcpus.stdout), { exact: '3/4', vcpus: 1 });

  // The public API (package.json main/types/exports["."]) from the installed package.
  const installedMain = path.join(installed, 'kata-ts/dist/index.js');
  t.true(existsSync(installedMain), 'dist/index.js is shipped');
  t.true(existsSync(path.join(installed, 'kata-ts/dist/index.d.ts')), 'dist/index.d.ts is shipped');
  const api = await run(process.execPath, ['--input-type=module', '-e', PLAN_EXAMPLE], {
    env,
    cwd: app,
  });
  const planned = JSON.parse(api.stdout) as {
    exports: string[];
    sandboxId: string;
    vcpus: { boot: number };
    memoryMiB: number;
    containers: string[];
  };
  for (const name of [
    'plan',
    'parseKataConfig',
    'readOciBundle',
    'createSandbox',
    'addContainer',
    'deleteSandbox',
    'cleanup',
    'connectAgent',
    'AgentClient',
    'formatLifecycleError',
  ]) {
    t.true(planned.exports.includes(name), `kata-ts exports ${name}`);
  }
  t.is(planned.sandboxId, 'sb-1');
  t.deepEqual(planned.containers, ['sb-1']);
  t.true(planned.vcpus.boot >= 1 && planned.memoryMiB > 0);

  // No shipped code (bin/, dist/, the loader) names a lifecycle test hook: only __test__/fixtures' entry points read them.
  const pkg = path.join(installed, 'kata-ts');
  const shipped = [
    ...filesBelow(path.join(pkg, 'bin')),
    ...filesBelow(path.join(pkg, 'dist')),
    path.join(pkg, 'index.js'),
  ];
  t.true(
    shipped.some((f) => f.endsWith('dist/lifecycle/crash-point.js')),
    'the scan sees dist/',
  );
  const hooked = shipped.flatMap((f) => {
    const text = readFileSync(f, 'utf8');
    return TEST_HOOK_ENV.filter((name) => text.includes(name)).map(
      (name) => `${path.relative(installed, f)}: ${name}`,
    );
  });
  t.deepEqual(hooked, []);
  t.false(existsSync(path.join(installed, 'kata-ts/__test__')), 'no test code published');
});
