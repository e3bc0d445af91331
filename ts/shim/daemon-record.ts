// What the daemon keeps per pod besides the lifecycle's state.json, so a restarted daemon can
// serve containerd again: `<state dir>/shim.json` with the registration (namespace, containerd's
// ttrpc address, bundle), the tasks and processes containerd created (stdio FIFO paths, status,
// exit), and the plan and bundles the lifecycle applied. Written through on every task event
// (atomic replace, 0600, in the root-only state dir); read back with zod.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { z } from 'zod';
import { parseJsonText } from '../input/json-text.js';
import { replaceFile } from '../input/replace-file.js';
import type { AttachInput } from '../lifecycle/sandbox-attach.js';
import { Status } from '../gen/containerd/types/task/task_pb.js';
import { RegisterSchema, type Register } from './address.js';
import type { Pod, ShimProcess, ShimTask } from './pod.js';

const StdioSchema = z.strictObject({ stdin: z.string(), stdout: z.string(), stderr: z.string() });

const ProcessRecordSchema = z.strictObject({
  execId: z.string(),
  stdio: StdioSchema,
  terminal: z.boolean(),
  status: z.enum(Status),
  exitStatus: z.int(),
  exitedAt: z.iso.datetime().nullable(),
  spec: z.unknown().optional(),
});

const TaskRecordSchema = z.strictObject({
  id: z.string(),
  bundle: z.string(),
  init: ProcessRecordSchema,
  execs: z.array(ProcessRecordSchema),
});

export const PodRecordSchema = z.strictObject({
  version: z.literal(1),
  register: RegisterSchema,
  /** Every container id registered to the pod (the sandbox's own included). */
  containers: z.array(z.string()),
  tasks: z.array(TaskRecordSchema),
  /** The lifecycle's ResourcePlan and BundleInputs (plain JSON data). */
  plan: z.record(z.string(), z.unknown()),
  bundles: z.array(z.record(z.string(), z.unknown())),
});
export type PodRecord = z.infer<typeof PodRecordSchema>;
export type ProcessRecord = z.infer<typeof ProcessRecordSchema>;

export const POD_RECORD_FILE = 'shim.json';

function processRecord(p: ShimProcess): ProcessRecord {
  return {
    execId: p.execId,
    stdio: { ...p.stdio },
    terminal: p.terminal === true,
    status: p.status,
    exitStatus: p.exitStatus,
    exitedAt: p.exitedAt?.toISOString() ?? null,
    ...(p.spec !== undefined ? { spec: p.spec } : {}),
  };
}

/** The pod as a record; null while it has no sandbox (nothing to re-attach to). */
export function podRecord(
  register: Register,
  containers: Iterable<string>,
  pod: Pod,
): PodRecord | null {
  const sb = pod.sandbox;
  if (sb === null) return null;
  const tasks = [...pod.tasks.values()].map((t: ShimTask) => ({
    id: t.id,
    bundle: t.bundle,
    init: processRecord(t.init),
    execs: [...t.execs.values()].map(processRecord),
  }));
  return {
    version: 1,
    register,
    containers: [...containers],
    tasks,
    plan: sb.plan as unknown as Record<string, unknown>,
    bundles: sb.bundles as unknown as Record<string, unknown>[],
  };
}

/** Writes the record into the sandbox's state dir; fails (never creates it) when the dir is gone. */
export function writePodRecord(stateDir: string, record: PodRecord): Result<void, string> {
  const written = replaceFile(
    path.join(stateDir, POD_RECORD_FILE),
    `${JSON.stringify(record)}\n`,
    0o600,
  );
  return written.isErr() ? err(written.error.what) : ok(undefined);
}

/** The record in `stateDir`, validated; Err says why it cannot be used (content never echoed). */
export function readPodRecord(stateDir: string): Result<PodRecord, string> {
  const file = path.join(stateDir, POD_RECORD_FILE);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return err(`${file}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  const json = parseJsonText(text);
  if (json.isErr()) return err(`${file}: ${json.error.message}`);
  const parsed = PodRecordSchema.safeParse(json.value);
  if (!parsed.success)
    return err(`${file}: ${parsed.error.issues.map((i) => i.path.join('.')).join(', ')}`);
  return ok(parsed.data);
}

/** The lifecycle's part of a record. */
export function attachInput(record: PodRecord): AttachInput {
  return {
    plan: record.plan as unknown as AttachInput['plan'],
    bundles: record.bundles as unknown as AttachInput['bundles'],
  };
}
