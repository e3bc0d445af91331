// Boots the test guest (ts/guest/build-guest.sh) with our agent as PID 1 under TCG, through the
// QEMU driver (`launchVm`), and connects the agent over the virtio-serial port: the VM is handed
// out once health Check answers SERVING. `stop()` closes the client and stops QEMU, whatever
// the state; every failure path before that stops it too.
import path from 'node:path';
import { errAsync, okAsync, ResultAsync } from 'neverthrow';
import { DEFAULT_HEALTH_TIMEOUT_MS, connectAgent, type AgentClient } from '../agent/client.js';
import type { AgentError } from '../agent/errors.js';
import type { Accel, CmdlineConfig, CmdlinePlan } from '../qemu/cmdline.js';
import { launchVm, type LaunchError, type RunningVm } from '../qemu/launch.js';
import { logTail } from '../qemu/vm.js';
import { FAST_BOOT_PARAMS, type GuestImage } from './guest-shell.js';

/** Kernel args of the agent guest: quick TCG boot; no `katats.init`, so /init execs the agent. */
export const AGENT_GUEST_KERNEL_PARAMS = FAST_BOOT_PARAMS;
/** grpc.health.v1 SERVING. */
const SERVING = 1;

export interface BootAgentGuestOptions {
  readonly plan: CmdlinePlan;
  readonly config: CmdlineConfig & { readonly path: string };
  readonly image: GuestImage;
  /** Sockets and logs (`qmp.sock`, `agent.sock`, `qemu.log`); the caller removes it. */
  readonly runDir: string;
  /** Guest serial console (boot progress of /init); default `<runDir>/console.log`. */
  readonly consoleLog?: string;
  /** Spawn → health SERVING budget. Default 60 s. */
  readonly bootTimeoutMs?: number;
  /** Default `tcg` (a stock Debian kernel cannot boot under this host's KVM, peers.md). */
  readonly accel?: Accel;
  /** Appended to AGENT_GUEST_KERNEL_PARAMS. */
  readonly extraKernelParams?: string;
  readonly onUnexpectedExit?: (message: string) => void;
}

export interface AgentGuest {
  readonly vm: RunningVm;
  readonly agent: AgentClient;
  /** ms from QEMU spawn until health Check answered SERVING. */
  readonly bootMs: number;
  /** Closes the agent connection and stops QEMU (QMP quit, SIGKILL by pid). Idempotent. */
  stop(): Promise<void>;
}

export type BootAgentGuestError =
  | LaunchError
  | (AgentError & { readonly console: string })
  | {
      readonly kind: 'guest-not-serving';
      readonly status: number;
      readonly message: string;
      readonly console: string;
    };

/** Boots the guest and returns it once the agent serves health checks. */
export function bootAgentGuest(
  o: BootAgentGuestOptions,
): ResultAsync<AgentGuest, BootAgentGuestError> {
  const bootTimeoutMs = o.bootTimeoutMs ?? 60_000;
  const started = performance.now();
  const consoleLog = o.consoleLog ?? path.join(o.runDir, 'console.log');
  const consoleTail = () => logTail(consoleLog);
  return launchVm({
    plan: o.plan,
    config: o.config,
    runDir: o.runDir,
    launch: {
      accel: o.accel ?? 'tcg',
      paused: false,
      kernel: o.image.kernel,
      initrd: o.image.initrd,
      extraKernelParams: [AGENT_GUEST_KERNEL_PARAMS, o.extraKernelParams ?? ''].join(' ').trim(),
      consoleLog,
    },
    ...(o.onUnexpectedExit !== undefined ? { onUnexpectedExit: o.onUnexpectedExit } : {}),
  }).andThen((vm) => {
    const fail = <T>(e: BootAgentGuestError) =>
      ResultAsync.fromSafePromise(vm.stop()).andThen(() => errAsync<T, BootAgentGuestError>(e));
    const remainingMs = () => Math.max(1_000, bootTimeoutMs - (performance.now() - started));
    // The chardev socket accepts at once; the request waits in QEMU until the agent opens the port.
    return connectAgent(
      { kind: 'unix', path: vm.agentSocket },
      {
        dialTimeoutMs: remainingMs(),
        healthTimeoutMs: Math.min(remainingMs(), DEFAULT_HEALTH_TIMEOUT_MS),
      },
    )
      .orElse((e) => fail<AgentClient>({ ...e, console: consoleTail() }))
      .andThen((agent) =>
        agent
          .check()
          .orElse(
            (e) => (
              agent.close(),
              fail<number>({ ...e, message: `health Check: ${e.message}`, console: consoleTail() })
            ),
          )
          .andThen((status) => {
            if (status !== SERVING) {
              agent.close();
              return fail<AgentGuest>({
                kind: 'guest-not-serving',
                status,
                message: `agent health status ${status}, want SERVING (1)`,
                console: consoleTail(),
              });
            }
            let stopped: Promise<void> | null = null;
            return okAsync<AgentGuest, BootAgentGuestError>({
              vm,
              agent,
              bootMs: performance.now() - started,
              stop: () => {
                stopped ??= (async () => {
                  agent.close();
                  await vm.stop();
                })();
                return stopped;
              },
            });
          }),
      );
  });
}
