// Pod networking, planned: which NICs the VM gets for the pod's veths (Kata's tcfilter model:
// one tap per veth, the guest NIC carrying the veth's MAC), where they sit on the PCI bus, and
// what the agent is told (UpdateInterface / UpdateRoutes / AddARPNeighbors). Pure: the facts of
// the pod's network namespace come in as data (ts/network reads them through the native netns
// crate), the plan goes out.
import { isIP } from 'node:net';
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import type { OciSpec } from '../spec/oci-spec.js';
import { PCIE0_SLOTS, qemuAddr } from './ports.js';

/** An address with its prefix length, as the netns crate reports it. */
export interface IpPrefixFact {
  readonly address: string;
  readonly prefixLen: number;
}

/** A veth of the pod's namespace and the tap created for it. */
export interface VethFact {
  readonly name: string;
  readonly mac: string;
  readonly mtu: number;
  readonly addresses: readonly IpPrefixFact[];
  readonly tapName: string;
  /** Tap queue fds opened (1 = single queue). */
  readonly queues: number;
  /** vhost-net fds opened for it (0 when /dev/vhost-net could not be opened). */
  readonly vhostFds: number;
}

export interface RouteFact {
  readonly destination: IpPrefixFact | null;
  readonly gateway: string | null;
  readonly source: string | null;
  readonly device: string;
  readonly scope: number;
  readonly ipv6: boolean;
}

export interface NeighbourFact {
  readonly address: string;
  readonly mac: string;
  readonly device: string;
  readonly state: number;
}

export interface NetworkFacts {
  readonly veths: readonly VethFact[];
  readonly routes: readonly RouteFact[];
  readonly neighbours: readonly NeighbourFact[];
}

/** One virtio-net NIC backed by a tap. */
export interface NicPlan {
  /** QEMU netdev id (`net<n>`), device id `virtio-net<n>`. */
  readonly id: string;
  readonly tapName: string;
  readonly vethName: string;
  /** The veth's MAC: the guest NIC answers for the pod IP with it. */
  readonly mac: string;
  readonly mtu: number;
  readonly queues: number;
  readonly vhost: boolean;
  readonly bus: string;
  /** `0x05.<n>`: function n of the network slot of pcie.0. */
  readonly addr: string;
  readonly multifunction: boolean;
}

/** IPFamily of types.proto: v4 = 0, v6 = 1. */
export type IpFamily = 0 | 1;

/** types.Interface as JSON (field names of the generated TS). */
export interface GuestInterface {
  readonly name: string;
  readonly hwAddr: string;
  readonly mtu: number;
  readonly IPAddresses: readonly { family: IpFamily; address: string; mask: string }[];
  readonly type: string;
}

/** types.Route. `dest` is `<ip>/<len>`, empty for the default route. */
export interface GuestRoute {
  readonly dest: string;
  readonly gateway: string;
  readonly device: string;
  readonly source: string;
  readonly scope: number;
  readonly family: IpFamily;
}

/** types.ARPNeighbor. */
export interface GuestNeighbour {
  readonly toIPAddress: { family: IpFamily; address: string; mask: string };
  readonly device: string;
  readonly lladdr: string;
  readonly state: number;
}

export interface NetworkPlan {
  readonly nics: readonly NicPlan[];
  readonly interfaces: readonly GuestInterface[];
  readonly routes: readonly GuestRoute[];
  readonly neighbours: readonly GuestNeighbour[];
}

export interface NetworkPlanOptions {
  /** vhost-net only helps under KVM (TCG has no ioeventfd/irqfd to hand it). */
  readonly accel: 'kvm' | 'tcg';
}

const SOURCE = 'pod network';
/** Functions of the one pcie.0 network slot. */
export const MAX_NICS = 8;
/** NUD_PERMANENT: Kata passes only permanent neighbours to the guest. */
const NUD_PERMANENT = 0x80;

/** The pod's network namespace path from the sandbox spec, or null (no networking asked). */
export function netnsPathOf(spec: OciSpec): string | null {
  const ns = spec.linux?.namespaces?.find((n) => n.type === 'network');
  return ns?.path !== undefined && ns.path !== '' ? ns.path : null;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const NAME = /^[A-Za-z0-9_.@-]{1,15}$/;

function family(ip: string): IpFamily {
  return isIP(ip) === 6 ? 1 : 0;
}

function vethProblems(v: VethFact, i: number): Problem[] {
  const p = (field: string, value: unknown, what: string) =>
    problem('network', SOURCE, `veths[${i}].${field}`, value, what);
  const out: Problem[] = [];
  if (!NAME.test(v.name)) out.push(p('name', v.name, 'not an interface name'));
  if (!NAME.test(v.tapName)) out.push(p('tapName', v.tapName, 'not an interface name'));
  if (!MAC.test(v.mac) || v.mac === '00:00:00:00:00:00')
    out.push(p('mac', v.mac, 'expected a unicast MAC aa:bb:cc:dd:ee:ff'));
  if (!Number.isInteger(v.mtu) || v.mtu < 68 || v.mtu > 65535)
    out.push(p('mtu', v.mtu, 'expected 68..65535'));
  if (!Number.isInteger(v.queues) || v.queues < 1 || v.queues > 16)
    out.push(p('queues', v.queues, 'expected 1..16 tap queues'));
  v.addresses.forEach((a, j) => {
    const max = isIP(a.address) === 6 ? 128 : 32;
    if (isIP(a.address) === 0 || a.prefixLen < 0 || a.prefixLen > max)
      out.push(p(`addresses[${j}]`, `${a.address}/${a.prefixLen}`, 'not an IP prefix'));
  });
  return out;
}

function nicOf(v: VethFact, n: number, count: number, o: NetworkPlanOptions): NicPlan {
  return {
    id: `net${n}`,
    tapName: v.tapName,
    vethName: v.name,
    mac: v.mac,
    mtu: v.mtu,
    queues: v.queues,
    vhost: o.accel === 'kvm' && v.vhostFds === v.queues,
    bus: 'pcie.0',
    addr: `${qemuAddr(PCIE0_SLOTS.network)}.${n}`,
    multifunction: n === 0 && count > 1,
  };
}

/** Routes on pod devices; device routes (no gateway) first so the gateways are reachable. */
function guestRoutes(facts: NetworkFacts, devices: ReadonlySet<string>): GuestRoute[] {
  return facts.routes
    .filter((r) => devices.has(r.device))
    .map((r) => ({
      dest: r.destination !== null ? `${r.destination.address}/${r.destination.prefixLen}` : '',
      gateway: r.gateway ?? '',
      device: r.device,
      source: r.source ?? '',
      scope: r.scope,
      family: (r.ipv6 ? 1 : 0) as IpFamily,
    }))
    .sort((a, b) => Number(a.gateway !== '') - Number(b.gateway !== ''));
}

/** NICs and guest configuration for the veths of the pod's namespace. */
export function planNetwork(
  facts: NetworkFacts,
  o: NetworkPlanOptions,
): Result<NetworkPlan, PlanError> {
  const problems = facts.veths.flatMap(vethProblems);
  if (facts.veths.length > MAX_NICS)
    problems.push(
      problem('network', SOURCE, 'veths', facts.veths.length, `at most ${MAX_NICS} interfaces`),
    );
  if (problems.length > 0) return err(planError(...problems));
  const devices = new Set(facts.veths.map((v) => v.name));
  const nics = facts.veths.map((v, n) => nicOf(v, n, facts.veths.length, o));
  const interfaces = facts.veths.map((v): GuestInterface => ({
    name: v.name,
    hwAddr: v.mac,
    mtu: v.mtu,
    IPAddresses: v.addresses.map((a) => ({
      family: family(a.address),
      address: a.address,
      mask: String(a.prefixLen),
    })),
    type: 'veth',
  }));
  const neighbours = facts.neighbours
    .filter((n) => devices.has(n.device) && (n.state & NUD_PERMANENT) !== 0)
    .map((n) => ({
      toIPAddress: { family: family(n.address), address: n.address, mask: '' },
      device: n.device,
      lladdr: n.mac,
      state: n.state,
    }));
  return ok({ nics, interfaces, routes: guestRoutes(facts, devices), neighbours });
}
