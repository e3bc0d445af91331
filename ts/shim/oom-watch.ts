// OOM kills in the guest become containerd's `/tasks/oom` (TaskOOM): one loop per pod waits on
// the agent's GetOOMEvent (it blocks until the guest's memory cgroup of a container records an
// OOM kill) and publishes the container's id. containerd's CRI then reports the container's exit
// reason as `OOMKilled`, whichever of TaskOOM and TaskExit arrives first (1.6 events.go sets the
// reason on TaskOOM). The loop ends with the agent connection (sandbox deleted, VM gone) or
// when the agent does not implement GetOOMEvent.
import type { Logger } from 'pino';
import type { AgentClient } from '../agent/client.js';
import { TaskOOMSchema } from '../gen/containerd/events/task_pb.js';
import type { EventPublisher } from './events.js';

/** google.rpc.Code UNIMPLEMENTED. */
const UNIMPLEMENTED = 12;
/** Pause after an agent error that may pass (e.g. INTERNAL), so a failing agent is not spun on. */
const RETRY_MS = 1_000;

/** What the loop needs from the pod: whether an id names one of its containers. */
export interface OomTarget {
  hasContainer(id: string): boolean;
}

/** Runs until the agent connection ends; resolves then (never rejects). */
export async function watchOom(
  agent: AgentClient,
  pod: OomTarget,
  events: EventPublisher,
  log: Logger,
): Promise<void> {
  for (;;) {
    const ev = await agent.getOomEvent();
    if (ev.isErr()) {
      const e = ev.error;
      if (e.kind !== 'status' || e.code === UNIMPLEMENTED) {
        log.debug({ err: e.message }, 'OOM watch ends');
        return;
      }
      log.warn({ err: e.message }, 'GetOOMEvent failed; retrying');
      await new Promise((r) => setTimeout(r, RETRY_MS).unref());
      continue;
    }
    const containerId = ev.value;
    if (!pod.hasContainer(containerId)) {
      log.warn({ id: containerId }, 'OOM event for a container this pod does not hold');
      continue;
    }
    log.info({ id: containerId }, 'OOM kill in the guest');
    await events.publish('/tasks/oom', TaskOOMSchema, { containerId });
  }
}
