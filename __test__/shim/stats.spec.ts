// Task Stats: the agent's StatsContainer answer becomes containerd's cgroups v1 Metrics in an Any
// typed `io.containerd.cgroups.v1.Metrics` (what containerd 1.6's CRI decodes: CPU from
// cpu.usage.total, working set = memory.usage.usage - memory.total_inactive_file). An agent
// without StatsContainer gives a named UNIMPLEMENTED error, never an empty Any. The real agent's
// stats through containerd are in stats-guest.spec.ts.
import { create, fromBinary } from '@bufbuild/protobuf';
import test from 'ava';
import { StatsContainerResponseSchema } from '../../ts/gen/agent_pb.js';
import { MetricsSchema } from '../../ts/gen/containerd/cgroups/stats/v1/metrics_pb.js';
import {
  CGROUPS_V1_METRICS_TYPE_URL,
  metricsAny,
  metricsFromAgentStats,
  statsError,
} from '../../ts/shim/stats.js';
import { rpcStatus } from '../../ts/shim/task-error.js';

const MiB = 1024n * 1024n;

const agentStats = (memoryStat: Record<string, bigint>) =>
  create(StatsContainerResponseSchema, {
    cgroupStats: {
      cpuStats: {
        cpuUsage: {
          totalUsage: 1_500_000_000n,
          percpuUsage: [1_000_000_000n, 500_000_000n],
          usageInKernelmode: 300_000_000n,
          usageInUsermode: 1_200_000_000n,
        },
        throttlingData: { periods: 10n, throttledPeriods: 2n, throttledTime: 5000n },
      },
      memoryStats: {
        cache: 4n * MiB,
        usage: { usage: 40n * MiB, maxUsage: 50n * MiB, failcnt: 1n, limit: 128n * MiB },
        swapUsage: { usage: 0n, limit: 256n * MiB },
        stats: memoryStat,
      },
      pidsStats: { current: 3n, limit: 100n },
      hugetlbStats: { '2MB': { usage: 2n * MiB, maxUsage: 4n * MiB, failcnt: 0n } },
    },
    networkStats: [
      { name: 'eth0', rxBytes: 1000n, rxPackets: 10n, txBytes: 2000n, txPackets: 20n },
    ],
  });

/** The Metrics as containerd would decode them from the Any. */
const decoded = (r: ReturnType<typeof agentStats>) => {
  const any = metricsAny(metricsFromAgentStats(r));
  return { any, m: fromBinary(MetricsSchema, any.value) };
};

test('the Any is typed io.containerd.cgroups.v1.Metrics and is never empty', (t) => {
  const { any } = decoded(agentStats({}));
  t.is(any.typeUrl, 'io.containerd.cgroups.v1.Metrics');
  t.is(CGROUPS_V1_METRICS_TYPE_URL, any.typeUrl);
  t.true(any.value.length > 0);
});

test('CPU, memory usage/limit, pids, hugetlb and network carry over', (t) => {
  const { m } = decoded(agentStats({ total_inactive_file: 10n * MiB, total_rss: 20n * MiB }));
  t.is(m.cpu?.usage?.total, 1_500_000_000n);
  t.is(m.cpu?.usage?.kernel, 300_000_000n);
  t.is(m.cpu?.usage?.user, 1_200_000_000n);
  t.deepEqual(m.cpu?.usage?.perCpu, [1_000_000_000n, 500_000_000n]);
  t.is(m.cpu?.throttling?.throttledPeriods, 2n);
  t.is(m.memory?.usage?.usage, 40n * MiB);
  t.is(m.memory?.usage?.limit, 128n * MiB);
  t.is(m.memory?.usage?.max, 50n * MiB);
  t.is(m.memory?.usage?.failcnt, 1n);
  t.is(m.memory?.swap?.limit, 256n * MiB);
  t.is(m.memory?.cache, 4n * MiB);
  t.is(m.memory?.totalRss, 20n * MiB);
  t.is(m.pids?.current, 3n);
  t.is(m.pids?.limit, 100n);
  t.deepEqual(
    m.hugetlb.map((h) => [h.pagesize, h.usage, h.max]),
    [['2MB', 2n * MiB, 4n * MiB]],
  );
  t.is(m.network.length, 1);
  t.is(m.network[0]?.name, 'eth0');
  t.is(m.network[0]?.rxBytes, 1000n);
  t.is(m.network[0]?.txPackets, 20n);
});

test("containerd's working set (usage - total_inactive_file) comes out right on a v1 guest", (t) => {
  const { m } = decoded(agentStats({ total_inactive_file: 10n * MiB, inactive_file: 1n }));
  t.is(m.memory!.usage!.usage - m.memory!.totalInactiveFile, 30n * MiB);
});

test('a cgroup v2 guest (memory.stat without total_*) fills the totals containerd reads', (t) => {
  const { m } = decoded(
    agentStats({ inactive_file: 6n * MiB, anon: 12n * MiB, file: 9n * MiB, pgmajfault: 7n }),
  );
  t.is(m.memory?.totalInactiveFile, 6n * MiB);
  t.is(m.memory?.totalRss, 12n * MiB);
  t.is(m.memory?.totalCache, 9n * MiB);
  t.is(m.memory?.totalPgMajFault, 7n);
  t.is(m.memory!.usage!.usage - m.memory!.totalInactiveFile, 34n * MiB);
});

test('an agent answer without cgroup stats still encodes (no cpu/memory, never a throw)', (t) => {
  const { any, m } = decoded(create(StatsContainerResponseSchema, {}));
  t.is(any.typeUrl, CGROUPS_V1_METRICS_TYPE_URL);
  t.is(m.cpu, undefined);
  t.is(m.memory, undefined);
});

test('an agent without StatsContainer is UNIMPLEMENTED naming it; other agent errors are INTERNAL', (t) => {
  const unimplemented = statsError('c1', {
    kind: 'status',
    method: 'StatsContainer',
    code: 12,
    codeName: 'UNIMPLEMENTED',
    message: '/grpc.AgentService/StatsContainer is not supported',
  });
  t.deepEqual(rpcStatus(unimplemented), {
    code: 12,
    message: 'kata-ts shim: c1: Stats: the guest agent does not implement StatsContainer',
  });
  const lost = statsError('c1', { kind: 'connection-lost', message: 'agent gone' });
  t.deepEqual(rpcStatus(lost), {
    code: 13,
    message: 'kata-ts shim: c1: Stats: StatsContainer: agent gone',
  });
});
