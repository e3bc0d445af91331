// The lifecycle's view of pod networking: attach before QEMU starts, hand QEMU the taps, tie the
// host-side teardown to the VM's stop, and configure the guest once its agent answers.
import { err, ok, okAsync, type Result, type ResultAsync } from 'neverthrow';
import type { AgentClient } from '../agent/client.js';
import { netnsPathOf } from '../plan/network.js';
import type { Accel } from '../qemu/cmdline.js';
import type { RunningVm } from '../qemu/launch.js';
import type { PidLauncher } from '../qemu/vm.js';
import type { OciSpec } from '../spec/oci-spec.js';
import {
  attachPodNetwork,
  configureGuestNetwork,
  detachPodNetwork,
  type NetworkError,
  type PodNetwork,
} from './pod-network.js';

/** A pod network set up on the host, waiting for QEMU. */
export interface StartedNetwork {
  readonly qemuArgs: readonly string[];
  readonly launcher: PidLauncher;
  /**
   * Takes launchVm's result: closes this process's fd copies; on Err removes the host side
   * again; on Ok returns the VM whose `stop()` also removes it.
   */
  launched<E>(r: Result<RunningVm, E>): Result<RunningVm, E>;
}

const networks = new WeakMap<RunningVm, PodNetwork>();

/** `{ podNetns }` when the sandbox spec names a network namespace path (a CNI-made pod netns). */
export function podNetnsOption(spec: OciSpec): { podNetns?: string } {
  const p = netnsPathOf(spec);
  return p !== null ? { podNetns: p } : {};
}

/** Attaches the pod network of `netns` (none when undefined). */
export function startPodNetwork(
  netns: string | undefined,
  accel: Accel,
  rootless: boolean,
): Result<StartedNetwork | null, NetworkError> {
  if (netns === undefined) return ok(null);
  if (rootless)
    return err({
      kind: 'network',
      step: 'attach',
      netns,
      message:
        'pod networking with rootless = true is not implemented (the taps are handed to a root QEMU only)',
    });
  return attachPodNetwork(netns, accel).map((net) => ({
    qemuArgs: net.qemuArgs,
    launcher: net.launcher,
    launched<E>(r: Result<RunningVm, E>): Result<RunningVm, E> {
      net.closeFds();
      if (r.isErr()) {
        void detachPodNetwork(net.netns, net.pairs);
        return r;
      }
      const vm = r.value;
      const wrapped: RunningVm = {
        ...vm,
        stop: async (timeoutMs?: number) => {
          await vm.stop(timeoutMs);
          // The taps go with QEMU's fds; the veths' ingress qdiscs stay until removed here.
          void detachPodNetwork(net.netns, net.pairs);
        },
      };
      networks.set(wrapped, net);
      return ok(wrapped);
    },
  }));
}

/** UpdateInterface / UpdateRoutes / AddARPNeighbors for the VM's pod network, if it has one. */
export function configurePodNetwork(
  vm: RunningVm,
  agent: AgentClient,
): ResultAsync<void, NetworkError> {
  const net = networks.get(vm);
  return net === undefined ? okAsync(undefined) : configureGuestNetwork(agent, net.netns, net.plan);
}
