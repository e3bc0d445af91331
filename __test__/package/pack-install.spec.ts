// Packs the main and platform packages, installs both tarballs into an empty directory with no
// Rust toolchain on PATH, and runs the installed CLI: `--version` and one native call.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const version = (await import('../../ts/cli/main.js')).packageVersion();

// PATH without any directory that holds cargo or rustc.
const pathWithoutRust = (process.env['PATH'] ?? '')
  .split(':')
  .filter((dir) => dir && !existsSync(path.join(dir, 'cargo')) && !existsSync(path.join(dir, 'rustc')))
  .join(':');

test('packed tarballs install and run without a Rust toolchain', async (t) => {
  const work = mkdtempSync(path.join(tmpdir(), 'kata-ts-pack-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  const packDir = path.join(work, 'tarballs');
  await run('bash', [path.join(root, 'scripts/pack.sh'), packDir], { cwd: root });
  const tarballs = readdirSync(packDir).sort();
  t.deepEqual(tarballs, [`kata-ts-${version}.tgz`, `kata-ts-linux-x64-gnu-${version}.tgz`]);

  const app = path.join(work, 'app');
  await run('mkdir', ['-p', app]);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
  const env = { ...process.env, PATH: pathWithoutRust, npm_config_audit: 'false', npm_config_fund: 'false' };
  await t.throwsAsync(run('cargo', ['--version'], { env }), undefined, 'cargo must not be reachable');
  await run('npm', ['install', '--no-save', ...tarballs.map((f) => path.join(packDir, f))], { cwd: app, env, timeout: 180_000 });

  const installed = path.join(app, 'node_modules');
  t.true(existsSync(path.join(installed, 'kata-ts-linux-x64-gnu/kata-ts.linux-x64-gnu.node')), 'prebuilt binary installed');
  t.false(existsSync(path.join(installed, 'kata-ts/kata-ts.linux-x64-gnu.node')), 'main package carries no binary');
  t.false(existsSync(path.join(installed, 'kata-ts/ts')), 'no TypeScript sources published');

  const bin = path.join(app, 'node_modules/.bin/kata-ts');
  const v = await run(bin, ['--version'], { env, cwd: app });
  t.is(v.stdout.trim(), version);
  const vcpus = await run(bin, ['vcpus', '--default', '0.5', '250000/1000000'], { env, cwd: app });
  t.deepEqual(JSON.parse(vcpus.stdout), { exact: '3/4', vcpus: 1 });
});
