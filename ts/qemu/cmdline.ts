// The QEMU command line from a ResourcePlan: pure, `plan + config + launch options → argv`.
// `-nodefaults` and an explicit `addr=` on every PCI device keep the planned PCI paths true
// (ts/plan/ports.ts PCIE0_SLOTS); nothing is auto-placed.
import { err, ok, type Result } from 'neverthrow';
import { problem, type Problem } from '../errors.js';
import type { HypervisorConfig } from '../config/kata-config.js';
import type { BlockDevice } from '../plan/block-devices.js';
import type { ResourcePlan } from '../plan/plan.js';
import { PCIE0_SLOTS, qemuAddr, type Port } from '../plan/ports.js';

export type Accel = 'kvm' | 'tcg';

/** How the agent is reached: vhost-vsock (needs /dev/vhost-vsock) or a virtio-serial port on a unix socket. */
export type AgentChannel =
  | { readonly kind: 'vhost-vsock'; readonly guestCid: number }
  | { readonly kind: 'virtio-serial'; readonly socketPath: string; readonly portName: string };

/** The virtio-serial port name the Kata agent opens (`/dev/virtio-ports/agent.channel.0`). */
export const AGENT_PORT_NAME = 'agent.channel.0';
/** virtio-fs mount tag of the sandbox share (Kata's `kataShared`). */
export const SHARED_FS_TAG = 'kataShared';

/** Per-launch facts that are not in the plan: sockets, accelerator, files. */
export interface VmLaunch {
  readonly accel: Accel;
  readonly qmpSocket: string;
  readonly agent: AgentChannel;
  /** `-S`: stop before the first instruction (QMP `cont` starts it). */
  readonly paused?: boolean;
  /** Guest serial console written to this file; none when absent. */
  readonly consoleLog?: string;
  /** vhost-user socket of this VM's virtiofsd (required when shared_fs = virtio-fs). */
  readonly virtiofsSocket?: string;
  /** Overrides of the config's boot files (tests boot their own kernel/initramfs). */
  readonly kernel?: string;
  readonly initrd?: string;
  /** Appended to the config's kernel_params. */
  readonly extraKernelParams?: string;
  /**
   * Native PCIe hotplug instead of q35's ACPI hotplug: unplug completes at once in a paused VM
   * (no guest to acknowledge), but a running guest then takes ~6 s (peers.md).
   */
  readonly pcieNativeHotplug?: boolean;
  /** Pod network NICs (`-netdev tap,fd=…` + `virtio-net-pci`, ts/qemu/netdev.ts). */
  readonly netdevArgs?: readonly string[];
}

export type CmdlineConfig = Pick<
  HypervisorConfig,
  | 'machineType'
  | 'machineAccelerators'
  | 'cpuFeatures'
  | 'kernel'
  | 'initrd'
  | 'image'
  | 'blockDeviceDriver'
  | 'memorySlots'
  | 'vmRootfsDriver'
>;

/** The kernel parameters come from the plan: the config's with the allowed annotation merged in. */
export type CmdlinePlan = Pick<
  ResourcePlan,
  | 'sandboxId'
  | 'vcpus'
  | 'memoryMiB'
  | 'maxMemoryMiB'
  | 'kernelParams'
  | 'ports'
  | 'coldplugDevices'
  | 'sharedDirs'
>;

/** The one problem source for command-line errors. */
const SOURCE = 'qemu command line';

function cmdProblem(field: string, value: unknown, what: string): Problem {
  return problem('qemu', SOURCE, field, value, what);
}

/** `key=value` options joined with commas; `,` inside values doubled as QEMU expects. */
export function qemuOpts(
  head: string,
  opts: Record<string, string | number | boolean | undefined>,
): string {
  const parts = [head];
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined) continue;
    const text = typeof v === 'boolean' ? (v ? 'on' : 'off') : String(v);
    parts.push(`${k}=${text.replaceAll(',', ',,')}`);
  }
  return parts.join(',');
}

function machineArgs(config: CmdlineConfig, launch: VmLaunch): string[] {
  const extra = config.machineAccelerators.trim();
  const machine = `${config.machineType},accel=${launch.accel}${extra === '' ? '' : `,${extra}`}`;
  const cpuBase = launch.accel === 'kvm' ? 'host,-arch-capabilities' : 'max';
  const features = config.cpuFeatures.trim();
  return ['-machine', machine, '-cpu', features === '' ? cpuBase : `${cpuBase},${features}`];
}

function memoryArgs(plan: CmdlinePlan, config: CmdlineConfig, sharedMemory: boolean): string[] {
  const args: string[] = [];
  const hotpluggable = plan.maxMemoryMiB > plan.memoryMiB && config.memorySlots > 0;
  args.push(
    '-m',
    hotpluggable
      ? `${plan.memoryMiB}M,slots=${config.memorySlots},maxmem=${plan.maxMemoryMiB}M`
      : `${plan.memoryMiB}M`,
  );
  if (sharedMemory) {
    // vhost-user (virtiofsd) maps guest RAM: it must be a shareable memfd.
    args.push(
      '-object',
      `memory-backend-memfd,id=mem,size=${plan.memoryMiB}M,share=on`,
      '-numa',
      'node,memdev=mem',
    );
  }
  return args;
}

function portArgs(port: Port): string {
  switch (port.type) {
    case 'root-port':
      return qemuOpts('pcie-root-port', {
        id: port.id,
        bus: port.bus,
        chassis: port.chassis ?? undefined,
        slot: port.slot ?? undefined,
        addr: port.addr,
        multifunction: false,
      });
    case 'switch-upstream':
      return qemuOpts('x3130-upstream', { id: port.id, bus: port.bus, addr: port.addr });
    case 'switch-downstream':
      return qemuOpts('xio3130-downstream', {
        id: port.id,
        bus: port.bus,
        chassis: port.chassis ?? undefined,
        slot: port.slot ?? undefined,
        addr: port.addr,
      });
    case 'pci-bridge':
      // runtime-go/runtime-rs: a conventional PCI bridge with its SHPC hot-plug controller.
      return qemuOpts('pci-bridge', {
        id: port.id,
        bus: port.bus,
        chassis_nr: port.chassis ?? undefined,
        shpc: true,
        addr: port.addr,
      });
  }
}

/** `host_device` for block special files, `file` for images: QEMU refuses the other pairing. */
export function blockBackendDriver(
  pathOnHost: string,
  isBlockDevice: boolean,
): 'host_device' | 'file' {
  return isBlockDevice || pathOnHost.startsWith('/dev/') ? 'host_device' : 'file';
}

/** `-blockdev` for a cold-plugged disk: raw over file/host_device, with the planned AIO and cache mode. */
function blockdevArg(d: BlockDevice): string {
  return qemuOpts('driver=raw', {
    'node-name': d.id,
    'read-only': d.readOnly,
    'cache.direct': d.directIo,
    'cache.no-flush': false,
    'file.driver': blockBackendDriver(d.pathOnHost, false),
    'file.filename': d.pathOnHost,
    'file.aio': d.aio,
  });
}

/** "<id>:<lun>" → numbers. */
export function parseScsiAddr(addr: string): { scsiId: number; lun: number } | null {
  const m = /^(\d+):(\d+)$/.exec(addr);
  return m ? { scsiId: Number(m[1]), lun: Number(m[2]) } : null;
}

function coldplugArgs(d: BlockDevice): Result<string[], Problem> {
  const field = `coldplugDevices.${d.id}`;
  switch (d.driver) {
    case 'virtio-blk-pci':
      if (d.bus === undefined || d.addr === undefined)
        return err(cmdProblem(field, d.driver, 'virtio-blk-pci device without a planned bus/addr'));
      return ok([
        '-blockdev',
        blockdevArg(d),
        '-device',
        qemuOpts('virtio-blk-pci', {
          id: d.id,
          drive: d.id,
          bus: d.bus,
          addr: d.addr,
          'share-rw': d.readOnly ? undefined : true,
        }),
      ]);
    case 'virtio-scsi': {
      const scsi = d.scsiAddr === undefined ? null : parseScsiAddr(d.scsiAddr);
      if (scsi === null)
        return err(
          cmdProblem(field, d.scsiAddr ?? '', 'virtio-scsi device without a planned SCSI address'),
        );
      const dev = qemuOpts('scsi-hd', {
        id: d.id,
        drive: d.id,
        bus: d.bus ?? 'scsi0.0',
        'scsi-id': scsi.scsiId,
        lun: scsi.lun,
        'share-rw': d.readOnly ? undefined : true,
      });
      return ok(['-blockdev', blockdevArg(d), '-device', dev]);
    }
    default:
      return err(
        cmdProblem(
          field,
          d.driver,
          `block driver ${d.driver} is not supported on QEMU q35 (virtio-blk-pci or virtio-scsi)`,
        ),
      );
  }
}

function agentArgs(agent: AgentChannel): string[] {
  const addr = qemuAddr(PCIE0_SLOTS.agentChannel);
  if (agent.kind === 'vhost-vsock') {
    return [
      '-device',
      qemuOpts('vhost-vsock-pci', {
        id: 'vsock0',
        'guest-cid': agent.guestCid,
        bus: 'pcie.0',
        addr,
      }),
    ];
  }
  return [
    '-device',
    qemuOpts('virtio-serial-pci', { id: 'vser0', bus: 'pcie.0', addr }),
    '-chardev',
    qemuOpts('socket', { id: 'agent', path: agent.socketPath, server: true, wait: false }),
    '-device',
    qemuOpts('virtserialport', { bus: 'vser0.0', chardev: 'agent', name: agent.portName }),
  ];
}

function bootArgs(
  plan: CmdlinePlan,
  config: CmdlineConfig,
  launch: VmLaunch,
): Result<string[], Problem[]> {
  const args: string[] = [];
  const problems: Problem[] = [];
  const kernel = launch.kernel ?? config.kernel;
  const initrd = launch.initrd ?? config.initrd;
  if (kernel !== '') args.push('-kernel', kernel);
  if (initrd !== '') args.push('-initrd', initrd);
  else if (config.image !== '' && launch.kernel === undefined) {
    // The guest image on the spare pcie.0 slot, read-only (a Kata guest image is never written).
    if (config.vmRootfsDriver !== 'virtio-blk-pci') {
      problems.push(
        cmdProblem(
          'hypervisor.qemu.vm_rootfs_driver',
          config.vmRootfsDriver,
          'only virtio-blk-pci guest images are supported by the QEMU driver yet',
        ),
      );
    } else {
      args.push(
        '-blockdev',
        qemuOpts('driver=raw', {
          'node-name': 'image',
          'read-only': true,
          'file.driver': 'file',
          'file.filename': config.image,
        }),
        '-device',
        qemuOpts('virtio-blk-pci', {
          id: 'image',
          drive: 'image',
          bus: 'pcie.0',
          addr: qemuAddr(PCIE0_SLOTS.spare),
        }),
      );
    }
  }
  const params = [plan.kernelParams.trim(), launch.extraKernelParams?.trim() ?? '']
    .filter((p) => p !== '')
    .join(' ');
  if (kernel !== '' && params !== '') args.push('-append', params);
  return problems.length > 0 ? err(problems) : ok(args);
}

/** The full argv (without the binary) for one VM; every problem reported, not the first. */
export function qemuCommandLine(
  plan: CmdlinePlan,
  config: CmdlineConfig,
  launch: VmLaunch,
): Result<string[], Problem[]> {
  const problems: Problem[] = [];
  if (config.machineType !== 'q35')
    problems.push(
      cmdProblem(
        'hypervisor.qemu.machine_type',
        config.machineType,
        'the QEMU driver drives q35 only',
      ),
    );
  // The plan decided (shared_fs = virtio-fs): a vhost-user-fs device and shareable guest RAM.
  const virtiofs = plan.sharedDirs !== null;
  if (virtiofs && launch.virtiofsSocket === undefined)
    problems.push(
      cmdProblem('virtiofsSocket', '', 'shared_fs = virtio-fs needs a virtiofsd socket'),
    );

  const args = [
    '-name',
    qemuOpts(plan.sandboxId, {}),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    ...machineArgs(config, launch),
    '-smp',
    `${plan.vcpus.boot},maxcpus=${Math.max(plan.vcpus.max, plan.vcpus.boot)}`,
    ...memoryArgs(plan, config, virtiofs),
    '-qmp',
    qemuOpts(`unix:${launch.qmpSocket}`, { server: true, wait: false }),
    '-monitor',
    'none',
  ];
  if (launch.paused) args.push('-S');
  if (launch.pcieNativeHotplug)
    args.push('-global', 'ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off');
  if (launch.consoleLog !== undefined) {
    args.push(
      '-chardev',
      qemuOpts('file', { id: 'console', path: launch.consoleLog }),
      '-serial',
      'chardev:console',
    );
  } else {
    args.push('-serial', 'none');
  }
  const boot = bootArgs(plan, config, launch);
  if (boot.isErr()) problems.push(...boot.error);
  else args.push(...boot.value);

  args.push(...agentArgs(launch.agent));
  const scsi =
    config.blockDeviceDriver === 'virtio-scsi' ||
    plan.coldplugDevices.some((d) => d.driver === 'virtio-scsi');
  if (scsi)
    args.push(
      '-device',
      qemuOpts('virtio-scsi-pci', {
        id: 'scsi0',
        bus: 'pcie.0',
        addr: qemuAddr(PCIE0_SLOTS.scsiController),
      }),
    );
  if (virtiofs && launch.virtiofsSocket !== undefined) {
    args.push(
      '-chardev',
      qemuOpts('socket', { id: 'vfs', path: launch.virtiofsSocket }),
      '-device',
      qemuOpts('vhost-user-fs-pci', {
        id: 'vfs0',
        chardev: 'vfs',
        tag: SHARED_FS_TAG,
        bus: 'pcie.0',
        addr: qemuAddr(PCIE0_SLOTS.sharedFs),
      }),
    );
  }
  if (launch.netdevArgs !== undefined) args.push(...launch.netdevArgs);
  for (const port of plan.ports) args.push('-device', portArgs(port));
  for (const d of plan.coldplugDevices) {
    const r = coldplugArgs(d);
    if (r.isErr()) problems.push(r.error);
    else args.push(...r.value);
  }
  return problems.length > 0 ? err(problems) : ok(args);
}
