// Issue 17 #13: the `kernel_params` annotation passed `plan` but never reached QEMU's -append,
// because the command line read the config's kernel_params (the lifecycle launches QEMU with the
// config as read from disk, not as the annotations changed it). The plan now carries the merged
// parameters and the command line reads them from the plan. Kata's merge (kata-types
// BootInfo::replace_kernel_params): the config's parameters first, an annotation parameter with the
// same key replaces the config's, new ones are appended.
import test from 'ava';
import { formatPlanError } from '../../ts/errors.js';
import { qemuCommandLine, type VmLaunch } from '../../ts/qemu/cmdline.js';
import { kataConfig, ociSpec, planOf } from '../plan/plan-builders.js';

const KEY = 'io.katacontainers.config.hypervisor.kernel_params';
const launch: VmLaunch = {
  accel: 'tcg',
  qmpSocket: '/run/vm/qmp.sock',
  virtiofsSocket: '/run/vm/vfs.sock',
  agent: { kind: 'virtio-serial', socketPath: '/run/vm/agent.sock', portName: 'agent.channel.0' },
};
const config = (enableAnnotations: string[]) =>
  kataConfig({
    kernel: '/k/vmlinux',
    image: '',
    initrd: '/k/initrd',
    kernelParams: 'quiet console=hvc0 agent.log=info',
    enableAnnotations,
    sharedFs: 'virtio-fs',
  });

/** -append of the command line built, as the lifecycle builds it, from the plan and the config read from disk. */
function appendOf(enableAnnotations: string[], annotations: Record<string, string>): string[] {
  const cfg = config(enableAnnotations);
  const p = planOf({
    config: cfg,
    sandbox: { id: 'sb', spec: ociSpec((s) => (s.annotations = annotations)) },
  })._unsafeUnwrap();
  const args = qemuCommandLine(p, cfg.hypervisor, launch)._unsafeUnwrap();
  return args.flatMap((a, i) => (args[i - 1] === '-append' ? [a] : []));
}

test('an allowed kernel_params annotation reaches -append after the config params, replacing a param with the same key', (t) => {
  t.deepEqual(appendOf(['kernel_params'], { [KEY]: 'agent.log=debug  systemd.unit=x.target' }), [
    'quiet console=hvc0 agent.log=debug systemd.unit=x.target',
  ]);
});

test('without the annotation -append is the config kernel_params', (t) => {
  t.deepEqual(appendOf(['kernel_params'], {}), ['quiet console=hvc0 agent.log=info']);
});

test('a kernel_params annotation not allowed by enable_annotations changes nothing', (t) => {
  t.deepEqual(appendOf([], { [KEY]: 'init=/bin/sh' }), ['quiet console=hvc0 agent.log=info']);
});

test('the plan carries the merged kernel parameters', (t) => {
  const p = planOf({
    config: config(['kernel_params']),
    sandbox: { id: 'sb', spec: ociSpec((s) => (s.annotations = { [KEY]: 'quiet' })) },
  })._unsafeUnwrap();
  t.is(p.kernelParams, 'console=hvc0 agent.log=info quiet');
});

test('a kernel_params annotation with a control character is refused (the kernel would split there, the by-key merge would not)', (t) => {
  const e = planOf({
    config: config(['kernel_params']),
    sandbox: { id: 'sb', spec: ociSpec((s) => (s.annotations = { [KEY]: 'quiet\ninit=/bin/sh' })) },
  })._unsafeUnwrapErr();
  const lines = formatPlanError(e);
  t.is(lines.length, 1);
  t.regex(lines[0]!, /kernel_params: "quiet\\ninit=\/bin\/sh" contains a control character/);
});
