// configuration.toml from disk goes through the shared reader with MAX_CONFIG_FILE_BYTES
// (issue 17 #6); a config is allowed to be a symlink, as Kata installs it as one.
import { mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { MAX_CONFIG_FILE_BYTES } from '../../ts/input/limits.js';
import { readKataConfigFile } from '../../ts/config/read-config-file.js';

function dir(t: ExecutionContext): string {
  const d = mkdtempSync(path.join(tmpdir(), 'kata-ts-config-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test('a config of exactly MAX_CONFIG_FILE_BYTES is read; one byte more is refused by name', (t) => {
  const d = dir(t);
  const head = '[hypervisor.qemu]\ndefault_vcpus = 2\n#';
  const at = path.join(d, 'at.toml');
  writeFileSync(at, head.padEnd(MAX_CONFIG_FILE_BYTES - 1, 'x') + '\n');
  t.is(readKataConfigFile(at)._unsafeUnwrap().config.hypervisor.defaultVcpus, '2');
  const over = path.join(d, 'over.toml');
  writeFileSync(over, '');
  truncateSync(over, MAX_CONFIG_FILE_BYTES + 1);
  t.deepEqual(formatPlanError(readKataConfigFile(over)._unsafeUnwrapErr()), [
    `kata-ts: ${over}: --config: cannot read: larger than ${MAX_CONFIG_FILE_BYTES} bytes (MAX_CONFIG_FILE_BYTES)`,
  ]);
});

test('a config reached through a symlink is read (Kata installs /etc/kata-containers/configuration.toml as one)', (t) => {
  const d = dir(t);
  writeFileSync(path.join(d, 'real.toml'), '[hypervisor.qemu]\ndefault_memory = 512\n');
  symlinkSync(path.join(d, 'real.toml'), path.join(d, 'configuration.toml'));
  t.is(
    readKataConfigFile(path.join(d, 'configuration.toml'))._unsafeUnwrap().config.hypervisor
      .defaultMemoryMiB,
    512,
  );
});
