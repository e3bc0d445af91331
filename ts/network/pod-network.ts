// Pod networking, applied (Kata's default `tcfilter` model): in the pod's network namespace a
// tap per veth with tc redirects both ways (native netns crate), the NICs planned from what the
// namespace holds (ts/plan/network.ts), QEMU started with the tap fds, and after boot the guest
// told its interfaces, routes and neighbours through the agent. `detach` undoes the host side.
import { closeSync } from 'node:fs';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { err, ok, okAsync, type Result, type ResultAsync } from 'neverthrow';
import { AGENT_SERVICE, type AgentClient } from '../agent/client.js';
import {
  AddARPNeighborsRequestSchema,
  RoutesSchema,
  UpdateInterfaceRequestSchema,
  UpdateRoutesRequestSchema,
} from '../gen/agent_pb.js';
import { InterfaceSchema } from '../gen/types_pb.js';
import { formatPlanError } from '../errors.js';
import { call, type NativeAddon } from '../native.js';
import { planNetwork, type NetworkFacts, type NetworkPlan } from '../plan/network.js';
import type { Accel } from '../qemu/cmdline.js';
import { netdevArgs, type NicFds } from '../qemu/netdev.js';
import type { PidLauncher } from '../qemu/vm.js';
import { FIRST_CHILD_FD, inheritingLauncher } from './tap-launcher.js';

/** What failed, with the namespace path; `message` is one line. */
export interface NetworkError {
  readonly kind: 'network';
  readonly step: 'attach' | 'plan' | 'guest' | 'detach';
  readonly netns: string;
  readonly message: string;
}

type Attached = ReturnType<NativeAddon['netnsAttach']>;

/** The host side of a pod's network, set up and ready to hand to QEMU. */
export interface PodNetwork {
  readonly netns: string;
  readonly plan: NetworkPlan;
  /** `-netdev`/`-device` arguments naming the fds as QEMU will see them. */
  readonly qemuArgs: readonly string[];
  /** Starts QEMU with the tap fds inherited. */
  readonly launcher: PidLauncher;
  /** (veth, tap) names, for detach. */
  readonly pairs: readonly { readonly veth: string; readonly tap: string }[];
  /** Closes this process's copies of the fds (QEMU keeps its own); call once QEMU started. */
  closeFds(): void;
}

const fail =
  (netns: string, step: NetworkError['step']) =>
  (e: { readonly message: string }): NetworkError => ({
    kind: 'network',
    step,
    netns,
    message: e.message,
  });

function factsOf(a: Attached): NetworkFacts {
  return {
    veths: a.pairs.map((p) => ({
      name: p.veth.name,
      mac: p.veth.mac,
      mtu: p.veth.mtu,
      addresses: p.veth.addresses,
      tapName: p.tapName,
      queues: p.tapFds.length,
      vhostFds: p.vhostFds.length,
    })),
    routes: a.snapshot.routes.map((r) => ({
      destination: r.destination ?? null,
      gateway: r.gateway ?? null,
      source: r.source ?? null,
      device: r.device,
      scope: r.scope,
      ipv6: r.ipv6,
    })),
    neighbours: a.snapshot.neighbours,
  };
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
  }
}

/** Removes what `attachPodNetwork` set up (veth ingress qdiscs with their filters, the taps). */
export function detachPodNetwork(
  netns: string,
  pairs: readonly { readonly veth: string; readonly tap: string }[],
): Result<void, NetworkError> {
  return call((n) => n.netnsDetach(netns, [...pairs])).mapErr(fail(netns, 'detach'));
}

/**
 * Taps and tc redirects for every veth of `netns`, and the NIC plan. `queues` per tap (1 unless
 * the config asks for multi-queue); vhost-net is asked for under KVM only. On any failure what
 * was set up is removed and the fds closed.
 */
export function attachPodNetwork(
  netns: string,
  accel: Accel,
  queues = 1,
): Result<PodNetwork, NetworkError> {
  const attached = call((n) => n.netnsAttach(netns, queues, accel === 'kvm'));
  if (attached.isErr()) return err(fail(netns, 'attach')(attached.error));
  const a = attached.value;
  const pairs = a.pairs.map((p) => ({ veth: p.veth.name, tap: p.tapName }));
  const ours = a.pairs.flatMap((p) => [...p.tapFds, ...p.vhostFds]);
  const undo = (e: NetworkError): Result<PodNetwork, NetworkError> => {
    closeAll(ours);
    void detachPodNetwork(netns, pairs);
    return err(e);
  };
  const planned = planNetwork(factsOf(a), { accel });
  if (planned.isErr())
    return undo(fail(netns, 'plan')({ message: formatPlanError(planned.error).join('; ') }));
  const plan = planned.value;
  // Child fd numbers: the inherited list is every NIC's tap fds, then its vhost fds (if used).
  const inherit: number[] = [];
  const nicFds: NicFds[] = plan.nics.map((nic, i) => {
    const p = a.pairs[i]!;
    const place = (fds: readonly number[]) =>
      fds.map((fd) => FIRST_CHILD_FD + inherit.push(fd) - 1);
    return { tap: place(p.tapFds), vhost: nic.vhost ? place(p.vhostFds) : [] };
  });
  const args = netdevArgs(plan.nics, nicFds);
  if (args.isErr()) return undo(fail(netns, 'plan')(args.error));
  return ok({
    netns,
    plan,
    qemuArgs: args.value,
    launcher: inheritingLauncher(inherit),
    pairs,
    closeFds: () => closeAll(ours),
  });
}

/**
 * Tells the guest its network, as Kata's runtime does after boot: UpdateInterface per NIC (found
 * by MAC, renamed to the veth's name, addresses, MTU, up), then UpdateRoutes, then
 * AddARPNeighbors when there are permanent neighbours.
 */
export function configureGuestNetwork(
  agent: AgentClient,
  netns: string,
  plan: NetworkPlan,
  timeoutMs = 30_000,
): ResultAsync<void, NetworkError> {
  const guestFail = (what: string) => (e: { readonly message: string }) =>
    fail(netns, 'guest')({ message: `${what}: ${e.message}` });
  let chain: ResultAsync<void, NetworkError> = okAsync(undefined);
  for (const i of plan.interfaces) {
    chain = chain.andThen(() =>
      agent
        .call(
          AGENT_SERVICE,
          'UpdateInterface',
          UpdateInterfaceRequestSchema,
          InterfaceSchema,
          { interface: { ...i, mtu: BigInt(i.mtu), IPAddresses: [...i.IPAddresses] } },
          timeoutMs,
        )
        .map(() => undefined)
        .mapErr(guestFail(`UpdateInterface ${i.name} (${i.hwAddr})`)),
    );
  }
  if (plan.routes.length > 0)
    chain = chain.andThen(() =>
      agent
        .call(
          AGENT_SERVICE,
          'UpdateRoutes',
          UpdateRoutesRequestSchema,
          RoutesSchema,
          { routes: { Routes: [...plan.routes] } },
          timeoutMs,
        )
        .map(() => undefined)
        .mapErr(guestFail('UpdateRoutes')),
    );
  if (plan.neighbours.length > 0)
    chain = chain.andThen(() =>
      agent
        .call(
          AGENT_SERVICE,
          'AddARPNeighbors',
          AddARPNeighborsRequestSchema,
          EmptySchema,
          { neighbors: { ARPNeighbors: [...plan.neighbours] } },
          timeoutMs,
        )
        .map(() => undefined)
        .mapErr(guestFail('AddARPNeighbors')),
    );
  return chain;
}
