// scripts/build-kata-agent.sh and scripts/build-kernel.sh without the peers' tree (a user's clone
// has no ../shared): a framed SKIPPED message, the distinct exit code 3 the Makefile and suites
// rely on, and nothing written to the cache. `--print-path` on an empty cache reports "not built"
// (exit 1) without building. Real scripts, real bash; the cache is a temp dir.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { gated, needs } from '../harness/prereq.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

function run(script: string, args: string[], env: Record<string, string>) {
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts', script), ...args], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tempCache(t: { teardown: (f: () => void) => void }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-cache-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ROWS = [
  {
    script: 'build-kata-agent.sh',
    args: [] as string[],
    env: 'KATA_AGENT_PEER',
    says: /build-kata-agent: SKIPPED: no kata-agent peer tree at \/nonexistent\/kata-agent/,
  },
  {
    script: 'build-kernel.sh',
    args: ['/nonexistent/out'],
    env: 'KATA_KERNEL_FRAGMENTS',
    says: /build-kernel: SKIPPED: no Kata kernel config fragments at \/nonexistent\/kata-agent/,
  },
];

for (const row of ROWS) {
  test(`${row.script} without the peers' tree: SKIPPED, exit 3, nothing cached`, (t) => {
    const cache = tempCache(t);
    const r = run(row.script, row.args, {
      [row.env]: '/nonexistent/kata-agent',
      KATA_TS_CACHE: cache,
    });
    t.is(r.status, 3, r.stderr);
    t.regex(r.stderr, row.says);
    t.regex(r.stderr, /^#{20,}$/m, 'framed, so it stands out in a CI log');
    t.is(r.stdout, '', 'no path printed');
    t.deepEqual(readdirSync(cache), []);
  });
}

const PEER = path.join(repoRoot, '../shared/peers/kata-agent');

gated(needs.file(PEER, '../shared/peers/kata-agent'))(
  'build-kata-agent.sh --print-path on an empty cache: exit 1, nothing built',
  (t) => {
    const cache = tempCache(t);
    const r = run('build-kata-agent.sh', ['--print-path'], {
      KATA_AGENT_PEER: PEER,
      KATA_TS_CACHE: cache,
    });
    t.is(r.status, 1, r.stderr);
    t.is(r.stdout, '');
    t.deepEqual(readdirSync(cache), []);
  },
);
