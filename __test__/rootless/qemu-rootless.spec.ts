// A real QEMU launched as the throwaway VMM user answers QMP on a socket in the prefixed host dir.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { QmpClient } from '../../ts/qemu/qmp-client.js';
import {
  createDirAllWithInheritOwner,
  createRootlessUser,
  launchAsRootlessUser,
  prefixWithRootlessDir,
  teardownRootlessUser,
  vmmGroups,
} from '../../ts/rootless/index.js';
import { gated, needs } from '../harness/prereq.js';

const QEMU = '/usr/bin/qemu-system-x86_64';

gated(needs.root(), needs.file(QEMU, 'QEMU'))(
  'QEMU started rootless answers QMP in the prefixed dir',
  async (t) => {
    const user = createRootlessUser()._unsafeUnwrap();
    let pid: number | undefined;
    let qmp: QmpClient | undefined;
    t.teardown(() => {
      qmp?.close();
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      teardownRootlessUser(user);
    });
    const vmDir = prefixWithRootlessDir(`/run/kata-ts/${user.name}`, {
      rootless: true,
      dir: user.runtimeDir,
    })._unsafeUnwrap();
    t.is(`${vmDir}`, `/run/user/${user.uid}/run/kata-ts/${user.name}`);
    createDirAllWithInheritOwner(vmDir, 0o700)._unsafeUnwrap();
    t.is(statSync(vmDir).uid, user.uid);
    const socket = `${vmDir}/qmp.sock`;
    const log = `${vmDir}/qemu.log`;
    pid = launchAsRootlessUser(user, {
      path: QEMU,
      args: [
        '-machine',
        'q35,accel=tcg',
        '-S',
        '-nodefaults',
        '-display',
        'none',
        '-qmp',
        `unix:${socket},server=on,wait=off`,
      ],
      stdout: log,
      stderr: log,
    })._unsafeUnwrap();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    t.regex(status, new RegExp(`^Uid:\\s+${user.uid}\\s+${user.uid}\\s`, 'm'));
    t.regex(status, new RegExp(`^Groups:\\s*${vmmGroups(user).join(' ')}\\s*$`, 'm'));
    const connected = await QmpClient.connect(socket, { timeoutMs: 20_000 });
    if (connected.isErr())
      t.fail(`${connected.error.message}\n${existsSync(log) ? readFileSync(log, 'utf8') : ''}`);
    qmp = connected._unsafeUnwrap();
    t.is(statSync(socket).uid, user.uid);
    const answer = (
      await qmp.execute<{ status: string; running: boolean }>('query-status')
    )._unsafeUnwrap();
    t.is(answer.running, false);
    t.is(answer.status, 'prelaunch');
  },
);
