// `<bundle>/rootfs-mounts.json`: containerd's rootfs mounts as the shim received them in the
// task-create request (ts/shim/pod.ts writes it). Absent means none. Read like every bundle file
// (regular, not a symlink, size-capped) and shape-checked with zod; errors quote nothing from it.
import path from 'node:path';
import { err, ok, type Result } from 'neverthrow';
import { z } from 'zod';
import { planError, problem, type PlanError } from '../errors.js';
import { issueMessage, jsonErrorField, parseJsonText } from '../input/json-text.js';
import { MAX_ROOTFS_MOUNTS_FILE_BYTES } from '../input/limits.js';
import { readInputFile } from '../input/read-input-file.js';

export const ROOTFS_MOUNTS_FILE = 'rootfs-mounts.json';

/** containerd's Mount, as in a task-create request. */
const RootfsMountsSchema = z.array(
  z.strictObject({
    type: z.string(),
    source: z.string(),
    target: z.string().optional(),
    options: z.array(z.string()).default([]),
  }),
);

/** One mount of the file (the planner's RootfsMount has the same shape). */
export type RootfsMountEntry = z.output<typeof RootfsMountsSchema>[number];

const fieldOf = (parts: readonly PropertyKey[]): string =>
  `rootfs-mounts${parts.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')}`;

/** Parses the file's text; `shown` names it in problems. */
export function parseRootfsMounts(
  text: string,
  shown: string,
): Result<RootfsMountEntry[], PlanError> {
  const json = parseJsonText(text);
  if (json.isErr())
    return err(
      planError(problem('input', shown, jsonErrorField(json.error), '', json.error.message)),
    );
  const parsed = RootfsMountsSchema.safeParse(json.value);
  if (parsed.success) return ok(parsed.data);
  return err(
    planError(
      ...parsed.error.issues.map((i) =>
        problem('input', shown, fieldOf(i.path), '', issueMessage(i)),
      ),
    ),
  );
}

/** `<bundleDir>/rootfs-mounts.json`, or [] when the bundle has none; `shownDir` names the bundle in problems. */
export function readRootfsMounts(
  bundleDir: string,
  shownDir = bundleDir,
): Result<RootfsMountEntry[], PlanError> {
  const file = path.join(bundleDir, ROOTFS_MOUNTS_FILE);
  const shown = path.join(shownDir, ROOTFS_MOUNTS_FILE);
  const text = readInputFile(file, {
    maxBytes: MAX_ROOTFS_MOUNTS_FILE_BYTES,
    limitName: 'MAX_ROOTFS_MOUNTS_FILE_BYTES',
    noFollow: true,
  });
  if (text.isErr())
    return text.error.kind === 'missing'
      ? ok([])
      : err(planError(problem('input', shown, ROOTFS_MOUNTS_FILE, '', text.error.what)));
  return parseRootfsMounts(text.value, shown);
}
