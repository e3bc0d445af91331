// A private containerd 1.6 (Debian package) for shim tests and benchmarks (peers.md "containerd").
// containerd runs in its own pid + mount namespace: a holder bash is the namespace's PID 1, binds a
// test-dir directory over /run (1.6 hard-codes /run/containerd/s/<hash> for shim sockets, and ctr
// puts its FIFOs in /run/containerd/fifo) and starts containerd with a config whose root, state
// and sockets live in the test dir. Shims daemonize, so they are reparented to the holder: its
// children other than containerd are the shims. ctr runs inside the same namespaces (nsenter).
// stop() kills containerd by its pid, then the shims (children of the holder), then the holder
// (which takes whatever is left in the pid namespace, and all private mounts, with it), removes
// the containers' host cgroups (/sys/fs/cgroup/<hierarchy>/<namespace>) and the test dir.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeSubtree, uniqueSubtree } from '../harness/cgroup-subtree.js';

/** Options of startContainerd. */
export interface ContainerdOptions {
  /** Directories put first on containerd's PATH: where it finds `containerd-shim-<name>-v2`. */
  readonly shimDirs?: readonly string[];
  /** containerd's log level (default info). */
  readonly logLevel?: 'debug' | 'info' | 'warn';
}

/** Output of a finished command. */
export interface CommandOutput {
  readonly stdout: string;
  readonly stderr: string;
}

/** A running private containerd. */
export interface PrivateContainerd {
  /** The test dir: config.toml, root/, state/, run/ (the private /run), sockets, containerd.log. */
  readonly dir: string;
  /** containerd's gRPC socket (what ctr and shims' `-address` use). */
  readonly address: string;
  /** containerd's ttrpc socket (the shims' `TTRPC_ADDRESS`, for events). */
  readonly ttrpcAddress: string;
  /** The containerd namespace ctr uses; also the host cgroup subtree of its containers. */
  readonly namespace: string;
  /** Host pid of the namespace holder (PID 1 of containerd's pid namespace). */
  readonly holderPid: number;
  /** Host pid of containerd. */
  readonly containerdPid: number;
  /** Runs `ctr --address <sock> --namespace <ns> ...args` inside the namespaces; rejects on failure. */
  ctr(...args: string[]): Promise<CommandOutput>;
  /** Starts the same ctr command and returns it running (stdin /dev/null, stdout/stderr piped). */
  spawnCtr(...args: string[]): ChildProcess;
  /** Runs any command inside containerd's mount and pid namespaces; rejects on failure. */
  inside(...args: string[]): Promise<CommandOutput>;
  /** Host pids of the shims (and anything else containerd's children left to the holder). */
  shimPids(): number[];
  /** The last `lines` lines of containerd's log. */
  logTail(lines?: number): string;
  /** Kills containerd, its shims and the namespace; removes cgroups and the test dir. Idempotent. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Children of `pid` (host pids), from procfs. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The pid of host process `pid` in its innermost pid namespace (last NSpid field). */
function innermostPid(pid: number): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('NSpid:'));
    return Number(line?.trim().split(/\s+/).pop());
  } catch {
    return undefined;
  }
}

/** True while `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(25);
  }
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(
              `${args.slice(args.indexOf('--') + 1).join(' ')}: ${err.message.split('\n')[0]}\n${stderr}${stdout}`,
            ),
          );
        else resolve({ stdout, stderr });
      },
    );
  });
}

function configToml(dir: string, logLevel: string): string {
  // CRI would want CNI and a sandbox image; the other snapshotters need devices or filesystems
  // this host lacks (peers.md): disabling them keeps the log free of plugin errors.
  const disabled = [
    'grpc.v1.cri',
    'snapshotter.v1.btrfs',
    'snapshotter.v1.zfs',
    'snapshotter.v1.devmapper',
    'snapshotter.v1.aufs',
    'internal.v1.opt',
    'tracing.processor.v1.otlp',
  ];
  return [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    `disabled_plugins = [${disabled.map((p) => `"io.containerd.${p}"`).join(', ')}]`,
    '[grpc]',
    `  address = "${dir}/containerd.sock"`,
    '[ttrpc]',
    `  address = "${dir}/containerd.sock.ttrpc"`,
    '[debug]',
    `  level = "${logLevel}"`,
    '',
  ].join('\n');
}

// PID 1 of the new namespaces. `wait $c` returns when containerd exits; bash reaps reparented
// shims meanwhile. After that, sleep holds the namespace until stop() kills it.
const HOLDER = [
  'set -e',
  'mount --bind "$1/run" /run',
  'PATH="${2:+$2:}$PATH" containerd --config "$1/config.toml" >>"$1/containerd.log" 2>&1 & c=$!',
  'echo $c >"$1/containerd.nspid"',
  'wait $c || true',
  'exec sleep infinity',
].join('\n');

/** Starts a private containerd and waits until it answers `ctr version`. */
export async function startContainerd(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
  // Short path: unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync(join(tmpdir(), 'kata-ts-ctrd-'));
  mkdirSync(join(dir, 'run'));
  writeFileSync(join(dir, 'config.toml'), configToml(dir, options.logLevel ?? 'info'));
  const address = join(dir, 'containerd.sock');
  const namespace = uniqueSubtree();
  // Watchdog as in private-systemd.ts: if this process dies without stop(), its pipe to the shell
  // closes, the shell SIGKILLs unshare, and --kill-child takes the holder (and so the whole pid
  // namespace: containerd, shims, containers) with it.
  const outer: ChildProcess = spawn(
    'sh',
    [
      '-c',
      'unshare --kill-child=SIGKILL "$@" & u=$!; read -r _; kill -KILL $u 2>/dev/null; wait',
      'sh',
      '--pid',
      '--fork',
      '--mount',
      '--mount-proc',
      '--propagation',
      'private',
      'bash',
      '-c',
      HOLDER,
      'kata-ts-containerd-holder',
      dir,
      (options.shimDirs ?? []).join(':'),
    ],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  const outerErr: string[] = [];
  outer.stderr!.on('data', (d: Buffer) => outerErr.push(d.toString()));
  let holderPid = 0;
  let containerdPid = 0;
  let stopped: Promise<void> | undefined;

  const logTail = (lines = 40) => {
    try {
      return readFileSync(join(dir, 'containerd.log'), 'utf8')
        .split('\n')
        .slice(-lines - 1)
        .join('\n');
    } catch {
      return '';
    }
  };
  const shimPids = () =>
    holderPid > 0 ? childrenOf(holderPid).filter((p) => p !== containerdPid) : [];

  const teardown = async () => {
    const failures: string[] = [];
    const attempt = async (step: () => unknown) => {
      try {
        await step();
      } catch (e) {
        failures.push((e as Error).message);
      }
    };
    if (containerdPid > 0) kill(containerdPid);
    await attempt(() =>
      waitFor('containerd to exit', 5000, () =>
        containerdPid === 0 || !alive(containerdPid) ? true : undefined,
      ),
    );
    for (const pid of shimPids()) kill(pid);
    if (holderPid > 0) kill(holderPid);
    outer.stdin?.end();
    if (outer.exitCode === null && outer.signalCode === null) {
      await Promise.race([new Promise((r) => outer.once('exit', r)), sleep(5000)]);
    }
    await attempt(() =>
      waitFor('the namespace holder to exit', 5000, () =>
        holderPid === 0 || !existsSync(`/proc/${holderPid}`) ? true : undefined,
      ),
    );
    // The private mounts (the /run bind, overlay rootfs, snapshot tmpmounts) died with the mount
    // namespace; anything of the test dir still mounted here would be a leak through propagation.
    const leaked = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .filter((l) => l.includes(dir));
    if (leaked.length > 0)
      failures.push(`mounts of ${dir} visible on the host:\n${leaked.join('\n')}`);
    await attempt(() => removeSubtree(namespace));
    if (leaked.length === 0) rmSync(dir, { recursive: true, force: true });
    if (failures.length > 0) throw new Error(`private containerd teardown: ${failures.join('; ')}`);
  };
  const stop = () => (stopped ??= teardown());

  try {
    holderPid = await waitFor('the namespace holder', 5000, () => {
      const unshare = outer.pid ? childrenOf(outer.pid)[0] : undefined;
      return unshare ? childrenOf(unshare)[0] : undefined;
    });
    // The holder's children also include `mount` early and shims later: match the pid it wrote
    // (a pid in its namespace) against the innermost NSpid of each child.
    containerdPid = await waitFor('containerd', 5000, () => {
      const nsPid = existsSync(join(dir, 'containerd.nspid'))
        ? Number(readFileSync(join(dir, 'containerd.nspid'), 'utf8'))
        : 0;
      return nsPid > 0 ? childrenOf(holderPid).find((p) => innermostPid(p) === nsPid) : undefined;
    });
    const nsenter = ['-t', String(holderPid), '--mount', '--pid', '--'];
    const ctrArgs = (args: string[]) => [
      ...nsenter,
      'ctr',
      '--address',
      address,
      '--namespace',
      namespace,
      ...args,
    ];
    const ctr = (...args: string[]) => run('nsenter', ctrArgs(args), 120_000);
    const spawnCtr = (...args: string[]) =>
      spawn('nsenter', ctrArgs(args), { stdio: ['ignore', 'pipe', 'pipe'] });
    // A whole `ctr run` of a TCG guest (boot, run, OOM) goes through `inside`: minutes under load.
    const inside = (...args: string[]) => run('nsenter', [...nsenter, ...args], 180_000);
    await waitFor('containerd to answer ctr version', 15_000, async () => {
      if (!alive(containerdPid)) throw new Error('containerd exited');
      if (!existsSync(address)) return undefined;
      return ctr('version').then(
        () => true,
        () => undefined,
      );
    });
    return {
      dir,
      address,
      ttrpcAddress: `${address}.ttrpc`,
      namespace,
      holderPid,
      containerdPid,
      ctr,
      spawnCtr,
      inside,
      shimPids,
      logTail,
      stop,
    };
  } catch (e) {
    const log = logTail();
    await stop().catch(() => undefined);
    throw new Error(
      `private containerd did not start: ${(e as Error).message}\n${outerErr.join('')}${log}`,
    );
  }
}
