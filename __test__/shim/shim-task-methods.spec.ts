// No OK for work not done: a Task method the agent cannot honour answers UNIMPLEMENTED naming
// what is missing, through a real containerd 1.6 (ctr) where ctr has a command for it and over
// the shim's own socket otherwise; Delete reports a failed removal. (Kill with `all` is
// tested in the guest, shim-guest.spec.ts: the stand-in agent signals every process anyway.)
// Same set-up as shim-tasks.spec.ts: the lifecycle's test hooks (paused QEMU, host-side agent
// whose processes exit when signalled), so no guest boots.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import type { ExecutionContext } from 'ava';
import {
  ResizePtyRequestSchema,
  StatsRequestSchema,
  UpdateTaskRequestSchema,
} from '../../ts/gen/containerd/task/v2/shim_pb.js';
import { callAsync } from '../../ts/native.js';
import { shimSocketOnHost } from '../containerd/daemon-pods.js';
import { TASK_SERVICE } from '../../ts/shim/task-service.js';
import { LINUX_RESOURCES_TYPE_URL } from '../../ts/shim/task-update.js';
import { requireAgentBinary } from '../agent/agent-harness.js';
import type { PrivateContainerd } from '../containerd/containerd-harness.js';
import { gated, needs } from '../harness/prereq.js';
import { containerdWithShim, hookConfig, RUNTIME, specFile, tasks, until } from './shim-harness.js';

const test = gated(needs.root(), needs.containerd(), needs.qemu(), needs.guest()).serial;

/** containerd with the hooked shim and one running task `id`; `agent` is the stand-in agent. */
async function runningTask(
  t: ExecutionContext,
  id: string,
): Promise<PrivateContainerd & { agent: ChildProcess }> {
  t.timeout(240_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-shim-methods-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = path.join(dir, 'agent.sock');
  const agent = spawn(requireAgentBinary(), ['--listen', `unix:${socket}`, '--root', dir], {
    stdio: 'ignore',
  });
  const exited = new Promise((r) => agent.once('exit', r));
  t.teardown(async () => {
    agent.kill('SIGKILL');
    await exited;
  });
  const { containerd: c } = await containerdWithShim(t, {
    KATA_TS_CONFIG: hookConfig(dir),
    KATA_TS_TEST_AGENT: socket,
    KATA_TS_QEMU_PAUSED: '1',
    KATA_TS_QEMU_ACCEL: 'tcg',
  });
  t.teardown(() => {
    if (!t.passed) t.log(c.logTail(40));
  });
  await c.ctr(
    'run',
    '-d',
    '--null-io',
    '--runtime',
    RUNTIME,
    '--config',
    await specFile(c, id, ['sleep', '1000']),
    id,
  );
  t.is((await tasks(c)).get(id), 'RUNNING');
  t.teardown(async () => {
    await c.ctr('task', 'kill', '--signal', 'SIGKILL', id).catch(() => undefined);
    await until('the task to stop', async () => (await tasks(c)).get(id) !== 'RUNNING').catch(
      () => undefined,
    );
    await c.ctr('task', 'delete', id).catch(() => undefined);
  });
  return Object.assign(c, { agent });
}

/** Calls the shim of task `id` directly (its socket, seen from this process). */
async function callShim(
  t: ExecutionContext,
  c: PrivateContainerd,
  id: string,
  method: string,
  payload: Uint8Array,
) {
  void id; // one host-wide shim serves every task
  const socket = shimSocketOnHost(c);
  const conn = (
    await callAsync((n) => n.dialAgent({ kind: 'unix', path: socket, timeoutMs: 2000 }))
  )._unsafeUnwrap();
  t.teardown(() => conn.close());
  return callAsync(() => conn.call(TASK_SERVICE, method, Buffer.from(payload), 10_000));
}

test('Stats with an agent lacking StatsContainer answers UNIMPLEMENTED naming it (never an empty Any containerd would crash on); containerd lives', async (t) => {
  // The stand-in (modelled) agent answers UNIMPLEMENTED for StatsContainer; real metrics from
  // the guest's agent are tested in stats.spec.ts.
  const c = await runningTask(t, 'stats-1');
  const req = toBinary(StatsRequestSchema, create(StatsRequestSchema, { id: 'stats-1' }));
  const r = await callShim(t, c, 'stats-1', 'Stats', req);
  t.regex(
    r.isErr() ? r.error.message : 'OK',
    /^12 UNIMPLEMENTED .*stats-1: Stats: the guest agent does not implement StatsContainer/,
  );
  // containerd's Metrics skips a task whose shim errs: ctr reports none, and containerd answers on.
  const e = await t.throwsAsync(c.ctr('task', 'metrics', 'stats-1'));
  t.regex(e!.message, /ctr: no metrics received/);
  t.is((await tasks(c)).get('stats-1'), 'RUNNING');
});

/** containerd's Update request: the OCI LinuxResources JSON in its typeurl Any. */
const updateRequest = (id: string, json: string, typeUrl = LINUX_RESOURCES_TYPE_URL) =>
  toBinary(
    UpdateTaskRequestSchema,
    create(UpdateTaskRequestSchema, {
      id,
      resources: { typeUrl, value: new TextEncoder().encode(json) },
    }),
  );

test('Update passes the resources to the agent and reports its refusal (no OK for limits not applied)', async (t) => {
  // ctr 1.6 has no `task update`: the request goes to the shim's socket as containerd sends it.
  // The stand-in agent answers UNIMPLEMENTED for UpdateContainer (the guest's agent applies it:
  // update.spec.ts).
  const c = await runningTask(t, 'update-1');
  const r = await callShim(
    t,
    c,
    'update-1',
    'Update',
    updateRequest(
      'update-1',
      '{"memory":{"limit":268435456},"cpu":{"quota":50000,"period":100000}}',
    ),
  );
  t.regex(
    r.isErr() ? r.error.message : 'OK',
    /^12 UNIMPLEMENTED .*update-1: Update: the guest agent does not implement UpdateContainer/,
  );
  const bad = await callShim(
    t,
    c,
    'update-1',
    'Update',
    updateRequest('update-1', '{"memory":{"limit":"lots"}}'),
  );
  t.regex(bad.isErr() ? bad.error.message : 'OK', /^3 INVALID_ARGUMENT .*memory\.limit/);
  const wrongType = await callShim(
    t,
    c,
    'update-1',
    'Update',
    updateRequest('update-1', '{}', 'example.com/Other'),
  );
  t.regex(
    wrongType.isErr() ? wrongType.error.message : 'OK',
    /^3 INVALID_ARGUMENT .*resources of type "example.com\/Other"/,
  );
});

test('ResizePty of a process without a terminal is FAILED_PRECONDITION, not OK', async (t) => {
  const c = await runningTask(t, 'resize-1');
  const req = toBinary(
    ResizePtyRequestSchema,
    create(ResizePtyRequestSchema, { id: 'resize-1', width: 80, height: 24 }),
  );
  const r = await callShim(t, c, 'resize-1', 'ResizePty', req);
  t.regex(
    r.isErr() ? r.error.message : 'OK',
    /^9 FAILED_PRECONDITION .*resize-1: ResizePty: the process has no terminal/,
  );
});

test('Delete reports a removal that failed instead of answering OK', async (t) => {
  const c = await runningTask(t, 'del-1');
  await c.ctr('task', 'kill', '--signal', 'SIGKILL', 'del-1');
  await until('the task to stop', async () => (await tasks(c)).get('del-1') === 'STOPPED');
  // The agent stops answering: RemoveContainer times out in the shim.
  c.agent.kill('SIGSTOP');
  t.teardown(() => void c.agent.kill('SIGCONT'));
  const e = await t.throwsAsync(c.ctr('task', 'delete', 'del-1'));
  t.regex(e!.message, /kata-ts: del-1: remove-container: /);
});
