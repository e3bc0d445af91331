// The container security context and terminals in a booted guest, asserted from inside the
// container, once per agent image (forEachGuestImage: ours and upstream kata-agent 4.1.0, the
// judge of what a request means). One boot per image: the sandbox container (`sleep 3601`, the
// pod's first container, so it holds the sandbox pid namespace as in Kata) and an app container
// whose CreateContainer asks for:
// - capabilities: bounding {CHOWN, KILL, NET_RAW}, effective = permitted = {KILL}, no inheritable
//   or ambient → CapBnd 0x2021, CapEff = CapPrm 0x20, CapInh = CapAmb 0;
// - noNewPrivileges, an RLIMIT_NOFILE, oomScoreAdj;
// - sysctls net.ipv4.ip_forward=1 and kernel.shm_rmid_forced=1 (read back under /proc/sys);
// - masked /proc/kcore (reads empty), read-only /proc/sys (a write fails with EROFS);
// - seccomp: default allow, mkdir/mkdirat → EPERM, kill(…, SIGUSR1) → EPERM (an argument
//   comparison) while kill -0 works;
// - sandbox_pidns: the app sees the sandbox container's `sleep 3601`.
// Then (ExecProcess) a process as uid 1000 with CAP_KILL in every set including ambient, its own
// RLIMIT_NOFILE, and the container's seccomp profile; and a terminal exec: `tty` names a
// /dev/pts/N, `stty size` shows ConsoleSize, then the TtyWinResize size, and stdin reaches it.
import path from 'node:path';
import type { JsonValue } from '@bufbuild/protobuf';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import type { ExecutionContext } from 'ava';
import { AGENT_SERVICE, type AgentClient } from '../../ts/agent/client.js';
import { TtyWinResizeRequestSchema } from '../../ts/gen/agent_pb.js';
import { bootAgentGuest } from '../../ts/guest/boot-agent-guest.js';
import { logTail } from '../../ts/qemu/vm.js';
import { execRequest } from '../../ts/shim/exec-spec.js';
import { needs } from '../harness/prereq.js';
import { alive, track } from '../qemu/qemu-harness.js';
import { ROOTFS_IMAGE } from './guest-fixture.js';
import { forEachGuestImage, type NamedGuestImage } from './guest-images.js';
import {
  createAndStart,
  createSandbox,
  podFixture,
  prepareContainer,
  removeContainer,
  STEP_TIMEOUT_MS,
  within,
} from './planned-pod.js';

const BOOT_TIMEOUT_MS = 120_000;
/** Known upstream defect (README "Guest images"): kata-agent 4.1.0's ExecProcess fails here. */
const KATA_EXEC_DEFECT = /failed to join pidns/;

const APP_SCRIPT = [
  'grep -E "^(Cap[a-zA-Z]+|NoNewPrivs|Seccomp):" /proc/self/status | tr "\\t" " "',
  'echo "nofile=$(ulimit -n)"',
  'echo "oom=$(cat /proc/self/oom_score_adj)"',
  'echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"',
  'echo "shm_rmid_forced=$(cat /proc/sys/kernel/shm_rmid_forced)"',
  'echo "version=$(wc -c </proc/version)"',
  'echo "syskernel=$(ls /sys/kernel | wc -l)"',
  'echo 0 2>&1 >/proc/sys/kernel/shm_rmid_forced | sed "s/^/rosys=/"',
  'mkdir /tmp/made 2>&1 | sed "s/^/mkdir=/"',
  'sh -c \'kill -USR1 $$\' 2>&1 | sed "s/^/usr1=/"',
  'kill -0 $$ && echo "kill0=ok"',
  'for p in /proc/[0-9]*; do echo "cmdline=$(tr "\\0" " " <$p/cmdline)"; done',
  'echo "=end="',
  'exec sleep 3602',
].join('\n');

const SECCOMP = {
  DefaultAction: 'SCMP_ACT_ALLOW',
  Syscalls: [
    { Names: ['mkdir', 'mkdirat'], Action: 'SCMP_ACT_ERRNO', errnoret: 1 },
    {
      Names: ['kill'],
      Action: 'SCMP_ACT_ERRNO',
      Args: [{ Index: '1', Value: '10', Op: 'SCMP_CMP_EQ' }],
    },
  ],
};

/** The app's CreateContainer request (proto3 JSON) with the security context above. */
function securedApp(json: JsonValue): JsonValue {
  const req = structuredClone(json) as Record<string, any>;
  req['sandboxPidns'] = true;
  const p = req['OCI']['Process'];
  p['Args'] = ['sh', '-c', APP_SCRIPT];
  p['Capabilities'] = {
    Bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW'],
    Effective: ['CAP_KILL'],
    Permitted: ['CAP_KILL'],
  };
  p['NoNewPrivileges'] = true;
  p['Rlimits'] = [{ Type: 'RLIMIT_NOFILE', Hard: '1234', Soft: '1234' }];
  p['OOMScoreAdj'] = '123';
  const l = req['OCI']['Linux'];
  l['Sysctl'] = { 'net.ipv4.ip_forward': '1', 'kernel.shm_rmid_forced': '1' };
  l['Seccomp'] = SECCOMP;
  l['MaskedPaths'] = ['/proc/version', '/sys/kernel'];
  l['ReadonlyPaths'] = ['/proc/sys'];
  req['OCI']['Mounts'] = [
    ...(req['OCI']['Mounts'] ?? []),
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
  ];
  return req as JsonValue;
}

let execs = 0;

/** Reads a process's stdout until `until` matches the text so far, or to its end. */
async function readUntil(
  agent: AgentClient,
  cid: string,
  execId: string,
  until?: RegExp,
): Promise<string> {
  let text = '';
  while (until === undefined || !until.test(text)) {
    const r = await within(
      STEP_TIMEOUT_MS,
      agent.readStdout(cid, execId, 64 * 1024),
      `ReadStdout ${cid}/${execId}`,
    );
    if (r.isErr() || r.value.length === 0) break;
    text += Buffer.from(r.value).toString('utf8');
  }
  return text;
}

async function startExec(agent: AgentClient, cid: string, process: object): Promise<string> {
  const execId = `exec-${execs++}`;
  (await agent.execProcess(execRequest(cid, execId, process))).match(
    () => undefined,
    (e) => {
      throw new Error(`ExecProcess: ${e.message}`);
    },
  );
  return execId;
}

const fields = (text: string, k: string) =>
  text
    .split(/\r?\n/)
    .filter((l) => l.startsWith(`${k}=`))
    .map((l) => l.slice(k.length + 1));

const status = (text: string, k: string) =>
  text
    .split('\n')
    .find((l) => l.startsWith(`${k}:`))
    ?.slice(k.length + 1)
    .trim();

async function securityContext(t: ExecutionContext, img: NamedGuestImage): Promise<void> {
  const f = podFixture('virtio-blk-pci', {
    sandboxArgs: ['sleep', '3601'],
    appArgs: ['true'],
  });
  t.teardown(() => f.cleanup());
  const consoleLog = path.join(f.dir, 'console.log');
  const booted = await bootAgentGuest({
    plan: f.plan,
    config: f.hv,
    image: img.image,
    runDir: path.join(f.dir, 'run'),
    consoleLog,
    bootTimeoutMs: BOOT_TIMEOUT_MS,
  });
  if (booted.isErr())
    throw new Error(
      `${booted.error.message}${'console' in booted.error ? `\nconsole:\n${booted.error.console}` : ''}`,
    );
  const g = booted.value;
  track(g.vm.vm.pid, g.vm.vm.exited);
  t.teardown(() => g.stop());
  const [sb, app] = f.plan.containers;
  const target = { kind: 'unix' as const, path: g.vm.agentSocket };
  try {
    await createSandbox(g.agent, f.plan);
    await prepareContainer(g.agent, target, g.vm.vm.qmp, sb!);
    await createAndStart(g.agent, sb!);
    await prepareContainer(g.agent, target, g.vm.vm.qmp, app!);
    await createAndStart(g.agent, {
      ...app!,
      createContainer: securedApp(app!.createContainer),
    });
    const a = app!.id;

    const text = await readUntil(g.agent, a, '', /=end=/);
    t.log(`[${img.name}] app init:\n${text}`);
    t.is(status(text, 'CapBnd'), '0000000000002021', 'bounding set {CHOWN, KILL, NET_RAW}');
    t.is(status(text, 'CapEff'), '0000000000000020', 'effective {KILL}');
    t.is(status(text, 'CapPrm'), '0000000000000020', 'permitted {KILL}');
    t.is(status(text, 'CapInh'), '0000000000000000', 'no inheritable');
    t.is(status(text, 'CapAmb'), '0000000000000000', 'no ambient');
    t.is(status(text, 'NoNewPrivs'), '1', 'noNewPrivileges');
    t.deepEqual(fields(text, 'nofile'), ['1234'], 'RLIMIT_NOFILE');
    t.deepEqual(fields(text, 'oom'), ['123'], 'oomScoreAdj');
    t.deepEqual(fields(text, 'ip_forward'), ['1'], 'sysctl net.ipv4.ip_forward');
    t.deepEqual(fields(text, 'shm_rmid_forced'), ['1'], 'sysctl kernel.shm_rmid_forced');
    t.deepEqual(fields(text, 'version'), ['0'], 'masked file /proc/version reads empty');
    if (img.name === 'kata-agent')
      // kata-agent 4.1.0 (rustjail mask_path) only binds /dev/null and ignores ENOTDIR: a masked
      // directory stays visible. We mask it with a read-only tmpfs, as runc does.
      t.not(fields(text, 'syskernel')[0], '0', 'kata-agent 4.1.0 does not mask directories');
    else t.deepEqual(fields(text, 'syskernel'), ['0'], 'masked directory /sys/kernel is empty');
    t.regex(fields(text, 'rosys')[0] ?? '', /Read-only file system/, 'read-only /proc/sys');
    if (img.name === 'kata-agent') {
      // The kata-agent built here (../shared/peers/kata-agent) lacks its `seccomp` feature, so it
      // ignores linux.seccomp: a difference of that build, not of the request.
      t.is(status(text, 'Seccomp'), '0', 'kata-agent without the seccomp feature loads no filter');
      t.deepEqual(fields(text, 'usr1'), [], 'kata-agent: SIGUSR1 not filtered');
    } else {
      t.is(status(text, 'Seccomp'), '2', 'a seccomp filter is loaded');
      t.regex(fields(text, 'mkdir')[0] ?? '', /Operation not permitted/, 'seccomp: mkdir → EPERM');
      t.regex(
        fields(text, 'usr1')[0] ?? '',
        /Operation not permitted/,
        'seccomp: kill SIGUSR1 → EPERM',
      );
    }
    t.deepEqual(fields(text, 'kill0'), ['ok'], 'kill with another signal allowed');
    const cmdlines = fields(text, 'cmdline');
    t.true(
      cmdlines.includes('sleep 3601 '),
      `sandbox pidns: the sandbox container's process is seen: ${cmdlines.join('|')}`,
    );

    // ExecProcess: kata-agent 4.1.0 fails it here (known defect, see agent-requests.spec.ts).
    const kill = ['CAP_KILL'];
    const userExec = {
      args: [
        'sh',
        '-c',
        'grep -E "^Cap" /proc/self/status | tr "\\t" " "; echo "nofile=$(ulimit -n)"; mkdir /tmp/x 2>&1 | sed "s/^/mkdir=/"; id -u',
      ],
      cwd: '/',
      env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
      user: { uid: 1000, gid: 1000 },
      capabilities: {
        bounding: kill,
        effective: kill,
        permitted: kill,
        inheritable: kill,
        ambient: kill,
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 777, soft: 777 }],
      noNewPrivileges: true,
    };
    const first = await g.agent.execProcess(execRequest(a, `exec-${execs}`, userExec));
    if (first.isErr() && img.name === 'kata-agent' && KATA_EXEC_DEFECT.test(first.error.message)) {
      t.log(`kata-agent ExecProcess: known defect: ${first.error.message.split('\n')[0]}`);
    } else {
      if (first.isErr()) throw new Error(`ExecProcess: ${first.error.message}`);
      const out = await readUntil(g.agent, a, `exec-${execs++}`);
      t.log(`[${img.name}] uid 1000 exec:\n${out}`);
      for (const set of ['CapBnd', 'CapEff', 'CapPrm', 'CapInh', 'CapAmb'])
        t.is(status(out, set), '0000000000000020', `exec as uid 1000: ${set} {KILL}`);
      if (img.name === 'kata-agent') {
        // kata-agent 4.1.0 keeps the container's rlimits for an exec (its own are ignored) and,
        // built without seccomp, filters nothing.
        t.deepEqual(fields(out, 'nofile'), ['1234'], 'kata-agent: exec keeps the init rlimit');
      } else {
        t.deepEqual(fields(out, 'nofile'), ['777'], 'exec RLIMIT_NOFILE');
        t.regex(
          fields(out, 'mkdir')[0] ?? '',
          /Operation not permitted/,
          'exec gets the seccomp profile',
        );
      }
      t.true(out.trimEnd().endsWith('1000'), 'exec runs as uid 1000');

      // A terminal. KNOWN OPEN MISMATCH (README "Guest images"): kata-agent 4.1.0's terminal exec
      // exits at once here ("child exited unexpectedly", no output) and `ctr run -t` on it prints
      // "not a tty"; not yet traced to our request or its rustjail. Ours is asserted; the
      // kata-agent half runs with KATA_TS_KNOWN_DEFECTS=1.
      if (img.name === 'kata-agent' && process.env['KATA_TS_KNOWN_DEFECTS'] !== '1') {
        t.log(
          'kata-agent terminal exec: known open mismatch, not run (KATA_TS_KNOWN_DEFECTS=1 runs it)',
        );
      } else {
        const tty = await startExec(g.agent, a, {
          args: ['sh', '-c', 'tty; stty size; read l; stty size; echo "l=$l"'],
          cwd: '/',
          env: ['PATH=/bin:/sbin:/usr/bin:/usr/sbin'],
          user: { uid: 0, gid: 0 },
          terminal: true,
          consoleSize: { height: 20, width: 60 },
          capabilities: { bounding: kill, effective: kill, permitted: kill },
        });
        let out2 = await readUntil(g.agent, a, tty, /20 60/);
        (
          await g.agent.call(
            AGENT_SERVICE,
            'TtyWinResize',
            TtyWinResizeRequestSchema,
            EmptySchema,
            { containerId: a, execId: tty, row: 33, column: 77 },
            STEP_TIMEOUT_MS,
          )
        )._unsafeUnwrap();
        (await g.agent.writeStdin(a, tty, Buffer.from('go\n')))._unsafeUnwrap();
        out2 += await readUntil(g.agent, a, tty);
        t.log(`[${img.name}] tty exec:\n${JSON.stringify(out2)}`);
        t.regex(out2, /^\/dev\/pts\/\d+\r?\n/, 'tty names the container pty');
        t.regex(out2, /20 60\r?\n/, 'ConsoleSize');
        t.regex(out2, /33 77\r?\n/, 'TtyWinResize');
        t.regex(out2, /l=go\r?\n/, 'stdin reaches the terminal');
        t.is(
          (
            await within(STEP_TIMEOUT_MS, g.agent.waitProcess(a, tty), 'WaitProcess tty')
          )._unsafeUnwrap(),
          0,
        );
      }
    }

    for (const c of [app!, sb!]) {
      (await g.agent.signalProcess(c.id, '', 9))._unsafeUnwrap();
      await within(STEP_TIMEOUT_MS, g.agent.waitProcess(c.id, ''), `WaitProcess ${c.id}`);
      await removeContainer(g.agent, g.vm.vm.qmp, c);
    }
    (await g.agent.destroySandbox())._unsafeUnwrap();
  } catch (e) {
    t.log(`console:\n${logTail(consoleLog, 6000)}`);
    throw e;
  }
  await g.stop();
  t.false(alive(g.vm.vm.pid), 'no QEMU left');
}

forEachGuestImage(
  'security context in the guest: capabilities, no_new_privs, rlimits, oom_score_adj, sysctls, masked/read-only paths, seccomp, sandbox pidns; exec as another uid; a terminal exec with TtyWinResize',
  securityContext,
  {
    timeout: 300_000,
    needs: [needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)')],
  },
);
