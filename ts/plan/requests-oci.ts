// OCI runtime spec (config.json JSON) → the agent's `grpc.Spec` message (oci.proto, capitalised
// field names). Unknown fields are dropped (the agent's message has no place for them); values the
// agent must not see are cleared by the caller (requests.ts).
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { SpecSchema, type Spec } from '../gen/oci_pb.js';
import type { OciMount, OciSpec } from '../spec/oci-spec.js';

type Json = Record<string, unknown>;
type SpecInit = MessageInitShape<typeof SpecSchema>;

const obj = (v: unknown): Json | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strs = (v: unknown): string[] => arr(v).filter((x): x is string => typeof x === 'string');
const bool = (v: unknown): boolean => v === true;
const u32 = (v: unknown): number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : 0;
const i64 = (v: unknown): bigint =>
  typeof v === 'number' && Number.isSafeInteger(v) ? BigInt(v) : 0n;
const u64 = (v: unknown): bigint =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : 0n;
const strMap = (v: unknown): Record<string, string> =>
  Object.fromEntries(
    Object.entries(obj(v) ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );

function process(p: Json | undefined): SpecInit['Process'] {
  if (p === undefined) return undefined;
  const user = obj(p.user) ?? {};
  const caps = obj(p.capabilities);
  const box = obj(p.consoleSize);
  return {
    Terminal: bool(p.terminal),
    ...(box ? { ConsoleSize: { Height: u32(box.height), Width: u32(box.width) } } : {}),
    User: {
      UID: u32(user.uid),
      GID: u32(user.gid),
      AdditionalGids: arr(user.additionalGids).map(u32),
      Username: str(user.username),
    },
    Args: strs(p.args),
    Env: strs(p.env),
    Cwd: str(p.cwd),
    ...(caps
      ? {
          Capabilities: {
            Bounding: strs(caps.bounding),
            Effective: strs(caps.effective),
            Inheritable: strs(caps.inheritable),
            Permitted: strs(caps.permitted),
            Ambient: strs(caps.ambient),
          },
        }
      : {}),
    Rlimits: arr(p.rlimits)
      .map(obj)
      .filter((r) => r !== undefined)
      .map((r) => ({ Type: str(r.type), Hard: u64(r.hard), Soft: u64(r.soft) })),
    NoNewPrivileges: bool(p.noNewPrivileges),
    ApparmorProfile: str(p.apparmorProfile),
    OOMScoreAdj: i64(p.oomScoreAdj),
    SelinuxLabel: str(p.selinuxLabel),
  };
}

function hooks(h: Json | undefined): SpecInit['Hooks'] {
  if (h === undefined) return undefined;
  const list = (v: unknown) =>
    arr(v)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({
        Path: str(x.path),
        Args: strs(x.args),
        Env: strs(x.env),
        Timeout: i64(x.timeout),
      }));
  return { Prestart: list(h.prestart), Poststart: list(h.poststart), Poststop: list(h.poststop) };
}

function resources(r: Json | undefined) {
  if (r === undefined) return undefined;
  const mem = obj(r.memory);
  const cpu = obj(r.cpu);
  const pids = obj(r.pids);
  return {
    ...(mem
      ? {
          Memory: {
            Limit: i64(mem.limit),
            Reservation: i64(mem.reservation),
            Swap: i64(mem.swap),
            Kernel: i64(mem.kernel),
            KernelTCP: i64(mem.kernelTCP),
            Swappiness: u64(mem.swappiness),
            DisableOOMKiller: bool(mem.disableOOMKiller),
          },
        }
      : {}),
    ...(cpu
      ? {
          CPU: {
            Shares: u64(cpu.shares),
            Quota: i64(cpu.quota),
            Period: u64(cpu.period),
            RealtimeRuntime: i64(cpu.realtimeRuntime),
            RealtimePeriod: u64(cpu.realtimePeriod),
            Cpus: str(cpu.cpus),
            Mems: str(cpu.mems),
          },
        }
      : {}),
    ...(pids ? { Pids: { Limit: i64(pids.limit) } } : {}),
    HugepageLimits: arr(r.hugepageLimits)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({ Pagesize: str(x.pageSize), Limit: u64(x.limit) })),
  };
}

function seccomp(s: Json | undefined) {
  if (s === undefined) return undefined;
  return {
    DefaultAction: str(s.defaultAction),
    Architectures: strs(s.architectures),
    Flags: strs(s.flags),
    Syscalls: arr(s.syscalls)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({
        Names: strs(x.names),
        Action: str(x.action),
        ErrnoRet:
          typeof x.errnoRet === 'number'
            ? { case: 'errnoret' as const, value: u32(x.errnoRet) }
            : { case: undefined },
        Args: arr(x.args)
          .map(obj)
          .filter((a) => a !== undefined)
          .map((a) => ({
            Index: u64(a.index),
            Value: u64(a.value),
            ValueTwo: u64(a.valueTwo),
            Op: str(a.op),
          })),
      })),
  };
}

function linux(l: Json | undefined): SpecInit['Linux'] {
  if (l === undefined) return undefined;
  const idMap = (v: unknown) =>
    arr(v)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({ HostID: u32(x.hostID), ContainerID: u32(x.containerID), Size: u32(x.size) }));
  const rdt = obj(l.intelRdt);
  const res = resources(obj(l.resources));
  const sec = seccomp(obj(l.seccomp));
  return {
    UIDMappings: idMap(l.uidMappings),
    GIDMappings: idMap(l.gidMappings),
    Sysctl: strMap(l.sysctl),
    ...(res ? { Resources: res } : {}),
    CgroupsPath: str(l.cgroupsPath),
    Namespaces: arr(l.namespaces)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({ Type: str(x.type), Path: str(x.path) })),
    Devices: arr(l.devices)
      .map(obj)
      .filter((x) => x !== undefined)
      .map((x) => ({
        Path: str(x.path),
        Type: str(x.type),
        Major: i64(x.major),
        Minor: i64(x.minor),
        FileMode: u32(x.fileMode),
        UID: u32(x.uid),
        GID: u32(x.gid),
      })),
    ...(sec ? { Seccomp: sec } : {}),
    RootfsPropagation: str(l.rootfsPropagation),
    MaskedPaths: strs(l.maskedPaths),
    ReadonlyPaths: strs(l.readonlyPaths),
    MountLabel: str(l.mountLabel),
    ...(rdt ? { IntelRdt: { L3CacheSchema: str(rdt.l3CacheSchema) } } : {}),
  };
}

export interface AgentSpecOverrides {
  readonly rootPath: string;
  readonly mounts: readonly OciMount[];
  readonly annotations: Readonly<Record<string, string>>;
}

/**
 * The agent's Spec for a container: root.path, mounts and annotations replaced; resources keep
 * only memory, CPU (without cpus: the sandbox cgroup owns the cpuset), pids and hugepage limits —
 * the reference clears devices, pids, blockIO and network before sending (reference §16/17); pids
 * are kept on purpose so the guest enforces a pod's pids limit (#20).
 */
export function toAgentSpec(spec: OciSpec, o: AgentSpecOverrides): Spec {
  const raw = spec as unknown as Json;
  const root = obj(raw.root) ?? {};
  const l = linux(obj(raw.linux));
  if (l?.Resources?.CPU) l.Resources.CPU.Cpus = '';
  const p = process(obj(raw.process));
  const h = hooks(obj(raw.hooks));
  return create(SpecSchema, {
    Version: str(raw.ociVersion),
    ...(p ? { Process: p } : {}),
    Root: { Path: o.rootPath, Readonly: bool(root.readonly) },
    Hostname: str(raw.hostname),
    Mounts: o.mounts.map((m) => ({
      destination: m.destination,
      source: m.source ?? '',
      type: m.type ?? '',
      options: [...(m.options ?? [])],
    })),
    ...(h ? { Hooks: h } : {}),
    Annotations: { ...o.annotations },
    ...(l ? { Linux: l } : {}),
  });
}

/**
 * The agent's LinuxResources for containerd's Task Update (OCI `linux.resources` JSON): what a
 * create sends, the same way (CPU without cpus, no devices/blockIO/network).
 */
export function toAgentResources(r: unknown): NonNullable<SpecInit['Linux']>['Resources'] {
  const res: NonNullable<SpecInit['Linux']>['Resources'] = resources(obj(r)) ?? {};
  if (res?.CPU) res.CPU.Cpus = '';
  return res;
}
