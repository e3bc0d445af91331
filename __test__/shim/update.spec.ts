// Task Update's resources: containerd's OCI LinuxResources JSON is validated with the spec's own
// schema and becomes the agent's LinuxResources as a create sends them (CPU without cpus: the
// sandbox cgroup owns the cpuset; pids kept; devices/blockIO/network dropped). The shim's answers
// through containerd are in shim-task-methods.spec.ts (stand-in agent) and critest.
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { toAgentResources } from '../../ts/plan/requests-oci.js';
import { parseLinuxResources } from '../../ts/spec/oci-spec.js';

test('memory, CPU (cpus cleared), pids and hugepages reach the agent; the rest does not', (t) => {
  const r = parseLinuxResources(
    JSON.stringify({
      memory: { limit: 268435456, swap: 268435456 },
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
      pids: { limit: 64 },
      hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
      devices: [{ allow: false, access: 'rwm' }],
      blockIO: { weight: 10 },
    }),
    'c1: Update resources',
  )._unsafeUnwrap();
  t.deepEqual(toAgentResources(r), {
    Memory: {
      Limit: 268435456n,
      Reservation: 0n,
      Swap: 268435456n,
      Kernel: 0n,
      KernelTCP: 0n,
      Swappiness: 0n,
      DisableOOMKiller: false,
    },
    CPU: {
      Shares: 512n,
      Quota: 50000n,
      Period: 100000n,
      RealtimeRuntime: 0n,
      RealtimePeriod: 0n,
      Cpus: '',
      Mems: '0',
    },
    Pids: { Limit: 64n },
    HugepageLimits: [{ Pagesize: '2MB', Limit: 4194304n }],
  });
});

test('malformed resources are refused naming the field', (t) => {
  const e = parseLinuxResources('{"memory":{"limit":"lots"},"pids":{}}', 'c1: Update resources');
  t.deepEqual(formatPlanError(e._unsafeUnwrapErr()), [
    'kata-ts: c1: Update resources: resources.memory.limit: expected an integer',
    'kata-ts: c1: Update resources: resources.pids.limit: expected an integer',
  ]);
});

test('text that is not JSON is refused, not thrown', (t) => {
  t.true(parseLinuxResources('{', 'c1: Update resources').isErr());
});
