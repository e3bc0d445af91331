// cgroup v2 limits verified against a real, complete cgroup2: the TCG guest's. This host's cgroup2
// offers no cpu/cpuset/memory/pids controller, so the cgroups crate's `guest_v2` tests (write
// cpu.max, cpu.weight, cpuset, memory.max, pids.max, read them back, the kernel refusing a fork
// over pids.max, delete with processes moved out, parents removed) run inside the guest:
// scripts/build-cgroups-guest-tests.sh links the crate's test binary statically and appends it
// to the guest's initramfs; the guest boots to its line shell (katats.init=shell), mounts cgroup2
// and runs them. io weights are not covered: the crate does not manage io.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { GuestShell, SHELL_BOOT_PARAMS } from '../../ts/guest/guest-shell.js';
import { launchVm } from '../../ts/qemu/launch.js';
import { logTail } from '../../ts/qemu/vm.js';
import { repoRoot } from '../cli/cli-harness.js';
import { ROOTFS_IMAGE } from '../guest/guest-fixture.js';
import { podFixture } from '../guest/planned-pod.js';
import { gated, needs } from '../harness/prereq.js';
import { track } from '../qemu/qemu-harness.js';

const test = gated(
  needs.root(),
  needs.qemu(),
  needs.guest(),
  needs.file(ROOTFS_IMAGE, 'busybox rootfs image (make guest)'),
);

const PATH = 'PATH=/bin:/sbin:/usr/bin:/usr/sbin';

test.serial(
  'cgroup v2 limits are written, read back and enforced inside the guest (cgroups crate guest_v2 tests)',
  async (t) => {
    t.timeout(1_200_000);
    // Cached by cargo after the first build (minutes on 2 loaded cores).
    const initrd = execFileSync(path.join(repoRoot, 'scripts/build-cgroups-guest-tests.sh'), {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    })
      .trim()
      .split('\n')
      .pop()!;
    const f = podFixture('virtio-blk-pci');
    t.teardown(() => f.cleanup());
    const consoleLog = path.join(f.dir, 'console.log');
    const launched = await launchVm({
      plan: f.plan,
      config: f.hv,
      runDir: path.join(f.dir, 'run'),
      launch: {
        accel: 'tcg',
        paused: false,
        kernel: path.join(repoRoot, 'build/guest/vmlinux'),
        initrd: path.join(repoRoot, initrd),
        extraKernelParams: SHELL_BOOT_PARAMS,
        consoleLog,
      },
    });
    const vm = launched._unsafeUnwrap();
    track(vm.vm.pid, vm.vm.exited);
    t.teardown(() => vm.stop());
    const shell = (await GuestShell.connect(vm.agentSocket))._unsafeUnwrap();
    t.teardown(() => shell.close());
    const ready = await shell.ready(120_000);
    if (ready.isErr()) throw new Error(`${ready.error.message}\nconsole:\n${logTail(consoleLog)}`);
    // The guest's cgroup2 (its init may have mounted it already), else a fresh mount.
    const mounted = (
      await shell.run(
        `${PATH}; grep cgroup /proc/mounts >&2; m=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts); if [ -z "$m" ]; then m=/run/kata-ts-cg2; mkdir -p $m && mount -t cgroup2 none $m || exit 1; fi; echo "$m"; cat $m/cgroup.controllers`,
        30_000,
      )
    )._unsafeUnwrap();
    t.is(mounted.rc, 0, mounted.output);
    const lines = mounted.output.trim().split('\n');
    const controllers = lines.pop()!;
    const root = lines.pop()!;
    t.log(`guest cgroup2 at ${root}: ${controllers}`);
    const run = (
      await shell.run(
        `${PATH}; KATA_TS_CGROUP2_ROOT=${root} /bin/cgroups-tests --ignored --test-threads=1 guest_v2`,
        600_000,
      )
    )._unsafeUnwrap();
    t.log(
      run.output
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('test '))
        .join('\n'),
    );
    t.is(run.rc, 0, run.output);
    t.regex(run.output, /test result: ok\. 5 passed; 0 failed/);
  },
);
