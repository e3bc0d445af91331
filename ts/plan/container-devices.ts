// A container's `linux.devices` block devices: resolved through host facts by major:minor,
// attached (hot-plugged) and handed to the agent as Devices.
import { err, ok, type Result } from 'neverthrow';
import { planError, problem, type PlanError, type Problem } from '../errors.js';
import { hostPath } from '../paths.js';
import type { BlockDevice, BlockDevicePlanner } from './devices.js';
import type { HostFacts } from './host-facts.js';
import type { BundleInput } from './plan-types.js';
import { containerDevice } from './volumes-block.js';
import type { DeviceInit } from './volumes-storage.js';

/** Block devices of `linux.devices` (type `b`), resolved through host facts by major:minor. */
export function containerBlockDevices(
  b: BundleInput,
  host: HostFacts,
  devices: BlockDevicePlanner,
): Result<{ blocks: BlockDevice[]; agentDevices: DeviceInit[] }, PlanError> {
  const blocks: BlockDevice[] = [];
  const agentDevices: DeviceInit[] = [];
  const problems: Problem[] = [];
  b.spec.linux.devices.forEach((d, i) => {
    if (d.type !== 'b') return;
    const field = `linux.devices[${i}]`;
    const fact = host.blockDevices[`${d.major}:${d.minor}`];
    if (!fact) {
      problems.push(
        problem(
          'spec',
          `${b.bundleDir}/config.json`,
          field,
          d.path,
          `no host block device ${d.major}:${d.minor} for ${d.path}`,
        ),
      );
      return;
    }
    const path = hostPath(fact.path);
    if (path.isErr()) {
      problems.push(
        problem('spec', `${b.bundleDir}/config.json`, field, fact.path, path.error.message),
      );
      return;
    }
    const dev = devices.allocate({
      pathOnHost: path.value,
      readOnly: fact.readOnly,
      hotplug: true,
    });
    if (dev.isErr()) {
      for (const p of dev.error.problems) {
        problems.push(
          problem(
            'spec',
            `${b.bundleDir}/config.json`,
            field,
            fact.path,
            `cannot attach ${fact.path}: ${p.message}`,
          ),
        );
      }
    } else {
      blocks.push(dev.value);
      agentDevices.push(containerDevice(d, dev.value));
    }
  });
  return problems.length > 0 ? err(planError(...problems)) : ok({ blocks, agentDevices });
}
