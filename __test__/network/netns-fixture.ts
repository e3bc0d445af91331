// A pod network namespace as CNI's bridge/ptp plugins leave one: `eth0` (a veth, 10.232.<k>.2/24,
// default route via .1) inside `/run/netns/kts-pod-<rand>`, its peer outside in this namespace with
// 10.232.<k>.1/24. Made with `ip` (fixture only; the code under test uses netlink), removed in
// teardown even when the test fails.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ExecutionContext } from 'ava';

export interface PodNetns {
  readonly name: string;
  readonly path: string;
  readonly hostVeth: string;
  readonly podIp: string;
  readonly hostIp: string;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });

export function makePodNetns(t: ExecutionContext): PodNetns {
  const rand = randomBytes(3).toString('hex');
  const k = (parseInt(rand, 16) % 250) + 1;
  const n: PodNetns = {
    name: `kts-pod-${rand}`,
    path: `/run/netns/kts-pod-${rand}`,
    hostVeth: `ktsv${rand}`,
    podIp: `10.232.${k}.2`,
    hostIp: `10.232.${k}.1`,
  };
  t.teardown(() => {
    for (const args of [
      ['link', 'del', n.hostVeth],
      ['netns', 'del', n.name],
    ])
      try {
        ip(...args);
      } catch {
        // Already gone.
      }
  });
  ip('netns', 'add', n.name);
  ip('link', 'add', n.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.name);
  ip('addr', 'add', `${n.hostIp}/24`, 'dev', n.hostVeth);
  ip('link', 'set', n.hostVeth, 'up');
  ip('-n', n.name, 'addr', 'add', `${n.podIp}/24`, 'dev', 'eth0');
  ip('-n', n.name, 'link', 'set', 'eth0', 'up');
  ip('-n', n.name, 'link', 'set', 'lo', 'up');
  ip('-n', n.name, 'route', 'add', 'default', 'via', n.hostIp);
  return n;
}

/** `tc qdisc show` and the link list of the pod namespace: what teardown must have removed. */
export function tcResidue(n: PodNetns): string[] {
  const out: string[] = [];
  const qdiscs = execFileSync('tc', ['-n', n.name, 'qdisc', 'show', 'dev', 'eth0'], {
    encoding: 'utf8',
  });
  if (/ingress/.test(qdiscs)) out.push(`eth0 still has an ingress qdisc: ${qdiscs.trim()}`);
  const links = execFileSync('ip', ['-n', n.name, '-o', 'link', 'show'], { encoding: 'utf8' });
  if (/tap\d+_kata/.test(links)) out.push(`a tap is left: ${links.trim()}`);
  return out;
}
