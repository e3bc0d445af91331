// Issue 17 #5–#8 end to end: `kata-ts plan` run as its own process against hostile inputs. Each
// must give one line per problem, `kata-ts: <where>: <what>`, exit 2, within seconds, with no stack
// trace, no raw control character and nothing of the file it was pointed at.
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { MAX_ERROR_LINE_CHARS } from '../../ts/input/limits.js';
import {
  exampleBundle,
  exampleConfig,
  HOST_FACTS,
  Scratch,
  spawnCli,
  type SpawnedRun,
} from './cli-harness.js';

function scratch(t: ExecutionContext): Scratch {
  const s = new Scratch();
  t.teardown(() => s.remove());
  return s;
}

/** A FIFO nobody writes to: reading it the old way blocked forever. */
function fifo(s: Scratch, name: string): string {
  const p = path.join(s.dir, name);
  execFileSync('mkfifo', [p]);
  return p;
}

/** Bytes a terminal would act on, or that would start another line. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029]/;

/** The run ended by itself with exit 2, printed nothing on stdout, and only well-formed lines on stderr. */
function inputErrorLines(t: ExecutionContext, r: SpawnedRun): string[] {
  t.false(r.timedOut, 'the CLI hung and was killed');
  t.is(r.code, 2, r.stderr);
  t.is(r.stdout, '');
  t.true(r.stderr.endsWith('\n'), JSON.stringify(r.stderr));
  const lines = r.stderr.slice(0, -1).split('\n');
  for (const line of lines) {
    t.regex(line, /^kata-ts: [^:]+: /);
    t.false(RAW_CONTROL.test(line), JSON.stringify(line));
    t.true(line.length <= MAX_ERROR_LINE_CHARS, `line of ${line.length} characters`);
    t.false(/\n\s+at |internal error|Maximum call stack/.test(line), line);
  }
  return lines;
}

async function plan(t: ExecutionContext, s: Scratch, args: string[]): Promise<string[]> {
  const facts = args.includes('--host-facts')
    ? []
    : ['--host-facts', s.file('facts.json', HOST_FACTS)];
  return inputErrorLines(t, await spawnCli(['plan', ...facts, ...args]));
}

test.serial('a FIFO as --config is refused at once, not read', async (t) => {
  const s = scratch(t);
  const lines = await plan(t, s, [
    '--config',
    fifo(s, 'config.toml'),
    '--sandbox',
    `sb=${exampleBundle}`,
  ]);
  t.deepEqual(lines, [
    `kata-ts: ${s.dir}/config.toml: --config: cannot read: is a FIFO, not a regular file`,
  ]);
});

test.serial("a FIFO as a bundle's config.json is refused at once", async (t) => {
  const s = scratch(t);
  const bundle = path.join(s.dir, 'b');
  mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  fifo(s, 'b/config.json');
  const lines = await plan(t, s, ['--config', exampleConfig, '--sandbox', `sb=${bundle}`]);
  t.deepEqual(lines, [
    `kata-ts: ${bundle}/config.json: config.json: cannot read: is a FIFO, not a regular file`,
  ]);
});

test.serial("a FIFO as a bundle's rootfs-mounts.json is refused at once", async (t) => {
  const s = scratch(t);
  const bundle = s.bundle('b');
  fifo(s, 'b/rootfs-mounts.json');
  const lines = await plan(t, s, ['--config', exampleConfig, '--sandbox', `sb=${bundle}`]);
  t.is(lines.length, 1);
  t.regex(
    lines[0]!,
    /rootfs-mounts\.json: rootfs-mounts\.json: cannot read: is a FIFO, not a regular file$/,
  );
});

test.serial(
  'a character device (/dev/zero) as --host-facts is refused without reading it',
  async (t) => {
    const s = scratch(t);
    const lines = await plan(t, s, [
      '--config',
      exampleConfig,
      '--sandbox',
      `sb=${exampleBundle}`,
      '--host-facts',
      '/dev/zero',
    ]);
    t.deepEqual(lines, [
      'kata-ts: /dev/zero: --host-facts: cannot read: is a character device, not a regular file',
    ]);
  },
);

test.serial('a directory as --config and a missing --host-facts say so', async (t) => {
  const s = scratch(t);
  t.deepEqual(await plan(t, s, ['--config', s.dir, '--sandbox', `sb=${exampleBundle}`]), [
    `kata-ts: ${s.dir}: --config: cannot read: is a directory, not a regular file`,
  ]);
  const missing = path.join(s.dir, 'nope.json');
  t.deepEqual(
    await plan(t, s, [
      '--config',
      exampleConfig,
      '--sandbox',
      `sb=${exampleBundle}`,
      '--host-facts',
      missing,
    ]),
    [`kata-ts: ${missing}: --host-facts: cannot read: no such file`],
  );
});

test.serial("a symlink planted as a bundle's config.json is not followed", async (t) => {
  const s = scratch(t);
  const bundle = path.join(s.dir, 'b');
  mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
  symlinkSync(path.join(exampleBundle, 'config.json'), path.join(bundle, 'config.json'));
  const lines = await plan(t, s, ['--config', exampleConfig, '--sandbox', `sb=${bundle}`]);
  t.deepEqual(lines, [
    `kata-ts: ${bundle}/config.json: config.json: cannot read: is a symbolic link (not followed inside a bundle)`,
  ]);
});

test.serial(
  '--host-facts pointed at a secret file says it is not JSON and shows none of it',
  async (t) => {
    const s = scratch(t);
    const secret =
      'root:$y$j9T$N0tAReaLHasHbUtL0ngEnough$abcdefghijklmnop:20210:0:99999:7:::\ndaemon:*:20210:0:99999:7:::\n';
    const shadowLike = s.file('shadow', secret);
    const lines = await plan(t, s, [
      '--config',
      exampleConfig,
      '--sandbox',
      `sb=${exampleBundle}`,
      '--host-facts',
      shadowLike,
    ]);
    t.deepEqual(lines, [`kata-ts: ${shadowLike}: json: invalid JSON`]);
    // The real one too, when this machine has it (its first field is a user name).
    if (existsSync('/etc/shadow')) {
      const real = await plan(t, s, [
        '--config',
        exampleConfig,
        '--sandbox',
        `sb=${exampleBundle}`,
        '--host-facts',
        '/etc/shadow',
      ]);
      t.is(real.length, 1);
      t.false(real[0]!.includes('root:'), real[0]);
      t.regex(
        real[0]!,
        /^kata-ts: \/etc\/shadow: (json: invalid JSON|--host-facts: cannot read: permission denied)$/,
      );
    }
  },
);

test.serial(
  'a TOML config with a secret on a bad line names line and column, not the line',
  async (t) => {
    const s = scratch(t);
    const config = s.file('c.toml', '[hypervisor.qemu]\npassword = hunter2-very-secret\n');
    const lines = await plan(t, s, ['--config', config, '--sandbox', `sb=${exampleBundle}`]);
    t.is(lines.length, 1);
    t.false(lines[0]!.includes('hunter2'), lines[0]);
    t.regex(lines[0]!, /TOML syntax error at line 2, column \d+/);
  },
);

test.serial(
  'an 8 MiB cc_init_data annotation is refused by its size cap in one short line (it overflowed the stack)',
  async (t) => {
    const s = scratch(t);
    const config = s.config([['hypervisor.qemu', 'enable_annotations', '["cc_init_data"]']]);
    const bundle = s.bundle(
      'b',
      (spec) =>
        (spec.annotations['io.katacontainers.config.hypervisor.cc_init_data'] = 'A'.repeat(
          8 * 1024 * 1024,
        )),
    );
    const lines = await plan(t, s, ['--config', config, '--sandbox', `sb=${bundle}`]);
    t.is(lines.length, 1);
    t.regex(
      lines[0]!,
      /cc_init_data: value of 8388608 bytes is larger than 262144 bytes \(MAX_ANNOTATION_VALUE_BYTES\)$/,
    );
    t.true(lines[0]!.length < 300, lines[0]);
  },
);

test.serial(
  'a 6 MiB io.katacontainers.volume= option is refused by its size cap, echoing a short prefix only',
  async (t) => {
    const s = scratch(t);
    const payload = Buffer.from(
      JSON.stringify({ volume_type: 'image_guest_pull', source: 'x'.repeat(4_800_000) }),
    ).toString('base64');
    t.true(payload.length > 6 * 1024 * 1024);
    const bundle = s.bundle('b');
    writeFileSync(
      path.join(bundle, 'rootfs-mounts.json'),
      JSON.stringify([
        { type: 'overlay', source: 'overlay', options: [`io.katacontainers.volume=${payload}`] },
      ]),
    );
    const lines = await plan(t, s, ['--config', exampleConfig, '--sandbox', `sb=${bundle}`]);
    t.is(lines.length, 1);
    t.regex(
      lines[0]!,
      /Failed to decode KataVirtualVolume from base64: eyJ2b2x1bWVfdHlwZSI6.*\.\.\. \(\d+ characters\) \(larger than 262144 bytes \(MAX_VIRTUAL_VOLUME_BYTES\)\)$/,
    );
    t.true(lines[0]!.length < 400, `${lines[0]!.length} characters`);
  },
);

test.serial(
  'a mount source with a newline, a forged kata-ts line and ANSI escapes prints one escaped line per problem',
  async (t) => {
    const s = scratch(t);
    const forged =
      '/srv/x\n kata-ts: fake: injected\r\u001b[2J\u001b]0;title\u0007\u009b31m\u2028done';
    const bundle = s.bundle('b', (spec) => {
      spec.mounts.push({ destination: '/data', type: 'bind', source: forged, options: ['rbind'] });
    });
    const r = await spawnCli([
      'plan',
      '--host-facts',
      s.file('facts.json', HOST_FACTS),
      '--config',
      exampleConfig,
      '--sandbox',
      `sb=${bundle}`,
    ]);
    const lines = inputErrorLines(t, r);
    t.false(r.stderr.includes('\u001b'), 'no raw ESC');
    t.is(
      lines.filter((l) => l.startsWith('kata-ts: fake') || l.startsWith(' kata-ts: fake')).length,
      0,
      r.stderr,
    );
    t.true(
      lines.some((l) =>
        l.includes(
          '/srv/x\\n kata-ts: fake: injected\\r\\u001b[2J\\u001b]0;title\\u0007\\u009b31m\\u2028done',
        ),
      ),
      r.stderr,
    );
  },
);

test.serial(
  'an annotation value with a newline and ANSI escapes is shown escaped in its one line',
  async (t) => {
    const s = scratch(t);
    const config = s.config([['hypervisor.qemu', 'enable_annotations', '["default_vcpus"]']]);
    const bundle = s.bundle(
      'b',
      (spec) =>
        (spec.annotations['io.katacontainers.config.hypervisor.default_vcpus'] =
          'two\nkata-ts: fake: injected\u001b[31m'),
    );
    const lines = await plan(t, s, ['--config', config, '--sandbox', `sb=${bundle}`]);
    t.is(lines.length, 1);
    t.true(lines[0]!.includes('default_vcpus: two\\nkata-ts: fake: injected\\u001b[31m'), lines[0]);
  },
);

test.serial('an unknown option carrying a newline is one usage line', async (t) => {
  const r = await spawnCli([
    'plan',
    '--config',
    exampleConfig,
    '--sandbox',
    `sb=${exampleBundle}`,
    '--bogus\nkata-ts: fake: injected',
  ]);
  t.false(r.timedOut);
  t.is(r.code, 2);
  const first = r.stderr.split('\n')[0]!;
  t.regex(first, /^kata-ts: unknown option '--bogus\\nkata-ts: fake: injected'/);
  t.false(
    r.stderr.split('\n').some((l) => l.startsWith('kata-ts: fake')),
    r.stderr,
  );
});

test.serial('a config.json that is not UTF-8 is refused as such', async (t) => {
  const s = scratch(t);
  const bundle = s.bundle('b');
  const spec = readFileSync(path.join(bundle, 'config.json'));
  writeFileSync(
    path.join(bundle, 'config.json'),
    Buffer.concat([spec.subarray(0, 10), Buffer.from([0xff, 0xfe]), spec.subarray(10)]),
  );
  t.deepEqual(await plan(t, s, ['--config', exampleConfig, '--sandbox', `sb=${bundle}`]), [
    `kata-ts: ${bundle}/config.json: config.json: cannot read: not UTF-8 text`,
  ]);
});

test.serial(
  'the lifecycle commands read inputs the same way: run with a FIFO config, create with a FIFO config.json; nothing is left in the state root',
  async (t) => {
    const s = scratch(t);
    const stateRoot = path.join(s.dir, 'state');
    const run = await spawnCli([
      'run',
      '--config',
      fifo(s, 'c.toml'),
      '--state-root',
      stateRoot,
      '--id',
      'h2-run',
      exampleBundle,
    ]);
    t.deepEqual(inputErrorLines(t, run), [
      `kata-ts: ${s.dir}/c.toml: --config: cannot read: is a FIFO, not a regular file`,
    ]);
    const bundle = path.join(s.dir, 'b');
    mkdirSync(path.join(bundle, 'rootfs'), { recursive: true });
    fifo(s, 'b/config.json');
    const create = await spawnCli([
      'create',
      '--config',
      exampleConfig,
      '--bundle',
      bundle,
      '--state-root',
      stateRoot,
      'h2-create',
    ]);
    t.deepEqual(inputErrorLines(t, create), [
      `kata-ts: ${bundle}/config.json: config.json: cannot read: is a FIFO, not a regular file`,
    ]);
    t.false(existsSync(stateRoot) && readdirSync(stateRoot).length > 0, 'a state dir was left');
  },
);
