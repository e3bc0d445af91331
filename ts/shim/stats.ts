// Task Stats: the agent's StatsContainer (the container's cgroup in the guest and the guest's
// interfaces) turned into containerd's cgroups v1 `Metrics`, packed as the Any that containerd's
// CRI decodes (`io.containerd.cgroups.v1.Metrics`, container_stats_list_linux.go in 1.6: CPU
// from cpu.usage.total, working set = memory.usage.usage - memory.total_inactive_file). v1 is
// the shape the agent's CgroupStats has on either guest cgroup version, and containerd 1.6
// decodes it on every host, as it does for Kata's shim. Never an empty Any: containerd 1.6's CRI
// dereferences a nil one and the whole containerd dies.
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { ResultAsync } from 'neverthrow';
import { AGENT_SERVICE, DEFAULT_REQUEST_TIMEOUT_MS, type AgentClient } from '../agent/client.js';
import type { AgentError } from '../agent/errors.js';
import {
  StatsContainerRequestSchema,
  StatsContainerResponseSchema,
  type MemoryData,
  type StatsContainerResponse,
} from '../gen/agent_pb.js';
import { MetricsSchema } from '../gen/containerd/cgroups/stats/v1/metrics_pb.js';
import { unsupported, type TaskError } from './task-error.js';

/** The type URL containerd's typeurl registry knows the cgroups v1 metrics by. */
export const CGROUPS_V1_METRICS_TYPE_URL = 'io.containerd.cgroups.v1.Metrics';

type MetricsInit = MessageInitShape<typeof MetricsSchema>;

/** The v1 `MemoryStat` counters that the cgroup v1 `memory.stat` keys fill one to one. */
const MEMORY_STAT_KEYS = {
  rss: 'rss',
  rssHuge: 'rss_huge',
  mappedFile: 'mapped_file',
  dirty: 'dirty',
  writeback: 'writeback',
  pgPgIn: 'pgpgin',
  pgPgOut: 'pgpgout',
  pgFault: 'pgfault',
  pgMajFault: 'pgmajfault',
  inactiveAnon: 'inactive_anon',
  activeAnon: 'active_anon',
  inactiveFile: 'inactive_file',
  activeFile: 'active_file',
  unevictable: 'unevictable',
  hierarchicalMemoryLimit: 'hierarchical_memory_limit',
  hierarchicalSwapLimit: 'hierarchical_memsw_limit',
  totalCache: 'total_cache',
  totalRss: 'total_rss',
  totalRssHuge: 'total_rss_huge',
  totalMappedFile: 'total_mapped_file',
  totalDirty: 'total_dirty',
  totalWriteback: 'total_writeback',
  totalPgPgIn: 'total_pgpgin',
  totalPgPgOut: 'total_pgpgout',
  totalPgFault: 'total_pgfault',
  totalPgMajFault: 'total_pgmajfault',
  totalInactiveAnon: 'total_inactive_anon',
  totalActiveAnon: 'total_active_anon',
  totalInactiveFile: 'total_inactive_file',
  totalActiveFile: 'total_active_file',
  totalUnevictable: 'total_unevictable',
} as const;

/**
 * cgroup v2 `memory.stat` names for the totals containerd reads, used when the v1 name is absent
 * (a cgroup v2 guest has no hierarchy totals: its counters already are hierarchical).
 */
const V2_FALLBACK: Partial<Record<keyof typeof MEMORY_STAT_KEYS, string>> = {
  rss: 'anon',
  totalRss: 'anon',
  mappedFile: 'file_mapped',
  totalMappedFile: 'file_mapped',
  totalDirty: 'file_dirty',
  totalWriteback: 'file_writeback',
  totalPgFault: 'pgfault',
  totalPgMajFault: 'pgmajfault',
  totalInactiveAnon: 'inactive_anon',
  totalActiveAnon: 'active_anon',
  totalInactiveFile: 'inactive_file',
  totalActiveFile: 'active_file',
  totalUnevictable: 'unevictable',
  totalCache: 'file',
};

const memoryEntry = (d: MemoryData | undefined) =>
  d === undefined
    ? undefined
    : { limit: d.limit, usage: d.usage, max: d.maxUsage, failcnt: d.failcnt };

/** The containerd cgroups v1 metrics for one agent StatsContainer answer (pure). */
export function metricsFromAgentStats(r: StatsContainerResponse): MetricsInit {
  const cg = r.cgroupStats;
  const mem = cg?.memoryStats;
  const stat = (key: keyof typeof MEMORY_STAT_KEYS): bigint => {
    const v1 = mem?.stats[MEMORY_STAT_KEYS[key]];
    if (v1 !== undefined) return v1;
    const v2 = V2_FALLBACK[key];
    return (v2 !== undefined ? mem?.stats[v2] : undefined) ?? 0n;
  };
  const counters = Object.fromEntries(
    (Object.keys(MEMORY_STAT_KEYS) as (keyof typeof MEMORY_STAT_KEYS)[]).map((k) => [k, stat(k)]),
  );
  const cpu = cg?.cpuStats;
  return {
    hugetlb: Object.entries(cg?.hugetlbStats ?? {}).map(([pagesize, h]) => ({
      usage: h.usage,
      max: h.maxUsage,
      failcnt: h.failcnt,
      pagesize,
    })),
    ...(cg?.pidsStats !== undefined
      ? { pids: { current: cg.pidsStats.current, limit: cg.pidsStats.limit } }
      : {}),
    ...(cpu !== undefined
      ? {
          cpu: {
            usage: {
              total: cpu.cpuUsage?.totalUsage ?? 0n,
              kernel: cpu.cpuUsage?.usageInKernelmode ?? 0n,
              user: cpu.cpuUsage?.usageInUsermode ?? 0n,
              perCpu: cpu.cpuUsage?.percpuUsage ?? [],
            },
            throttling: {
              periods: cpu.throttlingData?.periods ?? 0n,
              throttledPeriods: cpu.throttlingData?.throttledPeriods ?? 0n,
              throttledTime: cpu.throttlingData?.throttledTime ?? 0n,
            },
          },
        }
      : {}),
    ...(mem !== undefined
      ? {
          memory: {
            ...counters,
            cache: mem.cache,
            usage: memoryEntry(mem.usage),
            swap: memoryEntry(mem.swapUsage),
            kernel: memoryEntry(mem.kernelUsage),
          },
        }
      : {}),
    network: r.networkStats.map((n) => ({
      name: n.name,
      rxBytes: n.rxBytes,
      rxPackets: n.rxPackets,
      rxErrors: n.rxErrors,
      rxDropped: n.rxDropped,
      txBytes: n.txBytes,
      txPackets: n.txPackets,
      txErrors: n.txErrors,
      txDropped: n.txDropped,
    })),
  };
}

/** The Any a Stats answer carries. */
export function metricsAny(metrics: MetricsInit): Any {
  return {
    $typeName: 'google.protobuf.Any',
    typeUrl: CGROUPS_V1_METRICS_TYPE_URL,
    value: toBinary(MetricsSchema, create(MetricsSchema, metrics)),
  };
}

/** google.rpc.Code UNIMPLEMENTED, as the agent answers a method it lacks. */
export const UNIMPLEMENTED = 12;

/** The agent error for a container's Stats, named; an agent without StatsContainer is `unsupported`. */
export function statsError(taskId: string, e: AgentError): TaskError {
  if (e.kind === 'status' && e.code === UNIMPLEMENTED) return unsupported('stats', taskId);
  return { kind: 'agent', message: `kata-ts shim: ${taskId}: Stats: StatsContainer: ${e.message}` };
}

/** Asks the agent for the container's stats and packs them as containerd's metrics Any. */
export function containerStats(agent: AgentClient, taskId: string): ResultAsync<Any, TaskError> {
  return agent
    .call(
      AGENT_SERVICE,
      'StatsContainer',
      StatsContainerRequestSchema,
      StatsContainerResponseSchema,
      { containerId: taskId },
      DEFAULT_REQUEST_TIMEOUT_MS,
    )
    .map((r) => metricsAny(metricsFromAgentStats(r)))
    .mapErr((e) => statsError(taskId, e));
}
