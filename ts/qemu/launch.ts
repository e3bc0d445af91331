// One sandbox VM from its plan: sockets in a run dir, virtiofsd first when the plan shares a
// directory over virtio-fs, then QEMU with QMP connected. `stop()` undoes all of it, whatever
// state the start reached.
import { accessSync, chownSync, constants, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import type { Problem } from '../errors.js';
import {
  AGENT_PORT_NAME,
  qemuCommandLine,
  type AgentChannel,
  type CmdlineConfig,
  type CmdlinePlan,
  type VmLaunch,
} from './cmdline.js';
import { Virtiofsd, Vm, type PidLauncher, type VmError } from './vm.js';

export type LaunchError =
  | VmError
  | {
      readonly kind: 'vm-cmdline';
      readonly problems: readonly Problem[];
      readonly message: string;
    };

export interface LaunchOptions {
  readonly plan: CmdlinePlan;
  readonly config: CmdlineConfig & { readonly path: string };
  /** Sockets and logs go here (`qmp.sock`, `agent.sock`, `vfs.sock`, `qemu.log`, `virtiofsd.log`). */
  readonly runDir: string;
  /** Launch settings; sockets default to the run dir. */
  readonly launch: Omit<VmLaunch, 'qmpSocket' | 'agent' | 'virtiofsSocket'> &
    Partial<Pick<VmLaunch, 'agent'>>;
  /** Host directory virtiofsd exports when the plan shares one (`plan.sharedDirs`). */
  readonly sharedDir?: string;
  readonly startTimeoutMs?: number;
  /** Called once if QEMU exits on its own or is killed (not after `stop()`). */
  readonly onUnexpectedExit?: (message: string) => void;
  /** How QEMU is started (e.g. as the rootless VMM user); default a node child. virtiofsd stays a child. */
  readonly launcher?: PidLauncher;
  /** Owner given to virtiofsd's socket so a QEMU running as that user can connect to it. */
  readonly virtiofsSocketOwner?: { readonly uid: number; readonly gid: number };
}

export interface RunningVm {
  readonly vm: Vm;
  readonly virtiofsd: Virtiofsd | null;
  readonly agentSocket: string;
  /** QMP quit (bounded), SIGKILL by pid if needed, virtiofsd killed, sockets removed. */
  stop(timeoutMs?: number): Promise<void>;
}

/** vhost-vsock when /dev/vhost-vsock can be opened, else a virtio-serial port on `<runDir>/agent.sock`. */
export function detectAgentChannel(
  runDir: string,
  guestCid: number,
  vhostVsock = '/dev/vhost-vsock',
): AgentChannel {
  try {
    accessSync(vhostVsock, constants.R_OK | constants.W_OK);
    return { kind: 'vhost-vsock', guestCid };
  } catch {
    return {
      kind: 'virtio-serial',
      socketPath: path.join(runDir, 'agent.sock'),
      portName: AGENT_PORT_NAME,
    };
  }
}

/** chown_to_parent for virtiofsd's socket: a rootless QEMU must be able to connect to it. */
function giveSocket(
  d: Virtiofsd,
  socket: string,
  owner: LaunchOptions['virtiofsSocketOwner'],
): ResultAsync<Virtiofsd, LaunchError> {
  if (owner === undefined) return okAsync(d);
  try {
    chownSync(socket, owner.uid, owner.gid);
    return okAsync(d);
  } catch (e) {
    return ResultAsync.fromSafePromise(d.kill()).andThen(() =>
      errAsync<Virtiofsd, LaunchError>({
        kind: 'vm-spawn',
        binary: 'virtiofsd',
        message: `chown ${socket}: ${(e as Error).message}`,
      }),
    );
  }
}

export function launchVm(o: LaunchOptions): ResultAsync<RunningVm, LaunchError> {
  mkdirSync(o.runDir, { recursive: true });
  const qmpSocket = path.join(o.runDir, 'qmp.sock');
  const agentSocket = path.join(o.runDir, 'agent.sock');
  const vfsSocket = path.join(o.runDir, 'vfs.sock');
  const sockets = [qmpSocket, agentSocket, vfsSocket];
  const removeSockets = () => sockets.forEach((s) => rmSync(s, { force: true }));
  const virtiofs = o.plan.sharedDirs !== null;
  const launch: VmLaunch = {
    agent: { kind: 'virtio-serial', socketPath: agentSocket, portName: AGENT_PORT_NAME },
    ...o.launch,
    qmpSocket,
    ...(virtiofs ? { virtiofsSocket: vfsSocket } : {}),
  };
  const args = qemuCommandLine(o.plan, o.config, launch);
  if (args.isErr()) {
    return errAsync({
      kind: 'vm-cmdline',
      problems: args.error,
      message: args.error.map((p) => p.message).join('; '),
    });
  }
  if (virtiofs && o.sharedDir === undefined) {
    return errAsync({
      kind: 'vm-cmdline',
      problems: [],
      message: 'shared_fs = virtio-fs needs a shared directory',
    });
  }
  const fsd: ResultAsync<Virtiofsd | null, LaunchError> = virtiofs
    ? Virtiofsd.start({
        socketPath: vfsSocket,
        sharedDir: o.sharedDir!,
        logPath: path.join(o.runDir, 'virtiofsd.log'),
      }).andThen((d) => giveSocket(d, vfsSocket, o.virtiofsSocketOwner))
    : okAsync(null);
  let stopping = false;
  return fsd.andThen((virtiofsd) =>
    Vm.spawn({
      binary: o.config.path,
      args: args.value,
      logPath: path.join(o.runDir, 'qemu.log'),
      qmpSocket,
      startTimeoutMs: o.startTimeoutMs,
      ...(o.launcher !== undefined ? { launcher: o.launcher } : {}),
      onExit: (exit, tail) => {
        if (stopping) return;
        const how = exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
        o.onUnexpectedExit?.(`QEMU exited (${how}): ${tail || 'no output'}`);
      },
    })
      .orElse((e) =>
        ResultAsync.fromSafePromise(
          (virtiofsd?.kill() ?? Promise.resolve()).then(removeSockets),
        ).andThen(() => errAsync<Vm, LaunchError>(e)),
      )
      .map((vm): RunningVm => ({
        vm,
        virtiofsd,
        agentSocket,
        stop: async (timeoutMs = 5_000) => {
          stopping = true;
          await vm.quit(timeoutMs);
          await virtiofsd?.kill();
          removeSockets();
        },
      })),
  );
}
