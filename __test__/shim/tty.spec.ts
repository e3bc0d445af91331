// Terminal processes: ResizePty of a process without a pty is refused (never OK), an exec not
// started yet carries its size in the process spec's consoleSize (what ExecProcess hands the
// agent as Process.ConsoleSize). The pty itself in the guest, through containerd (`ctr run -t`),
// is in __test__/containerd/cri-task-guest.spec.ts; a resize of a started process goes to the
// agent's TtyWinResize (critest "exec with tty=true", README Kubernetes).
import test from 'ava';
import { Status } from '../../ts/gen/containerd/types/task/task_pb.js';
import type { AgentClient } from '../../ts/agent/client.js';
import { execRequest } from '../../ts/shim/exec-spec.js';
import { resizePty, withConsoleSize } from '../../ts/shim/tty.js';

// No agent call happens on these paths; an agent that fails the test if called stands in.
const noAgent = new Proxy({} as AgentClient, {
  get() {
    throw new Error('the agent must not be called');
  },
});

test('a process without a terminal: ResizePty is FAILED_PRECONDITION naming it', async (t) => {
  const r = await resizePty(
    noAgent,
    { containerId: 'c1', execId: 'e1', terminal: false, status: Status.RUNNING },
    { width: 80, height: 24 },
  );
  t.deepEqual(r._unsafeUnwrapErr(), {
    kind: 'failed-precondition',
    message: 'kata-ts shim: c1 exec e1: ResizePty: the process has no terminal',
  });
});

test('an exec not started yet takes the size into its spec, which ExecProcess sends', async (t) => {
  const p = {
    containerId: 'c1',
    execId: 'e1',
    terminal: true,
    status: Status.CREATED,
    spec: { terminal: true, args: ['sh'], cwd: '/', user: { uid: 0, gid: 0 } } as unknown,
  };
  t.true((await resizePty(noAgent, p, { width: 132, height: 43 })).isOk());
  const req = execRequest('c1', 'e1', p.spec);
  t.true(req.process?.Terminal);
  t.is(req.process?.ConsoleSize?.Height, 43);
  t.is(req.process?.ConsoleSize?.Width, 132);
});

test('withConsoleSize keeps the rest of the process and tolerates a non-object spec', (t) => {
  t.deepEqual(withConsoleSize({ args: ['sh'] }, { width: 1, height: 2 }), {
    args: ['sh'],
    consoleSize: { height: 2, width: 1 },
  });
  t.deepEqual(withConsoleSize(null, { width: 1, height: 2 }), {
    consoleSize: { height: 2, width: 1 },
  });
});
