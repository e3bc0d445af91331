// Kata virtual volumes (`io.katacontainers.volume=<base64 JSON>` in a rootfs mount option, kata-types
// `KataVirtualVolume`; vectors §4.4/4.5). kata-ts supports the `image_guest_pull` type, as the
// reference does; every other type is refused with the reference's error.
import { err, ok, type Result } from 'neverthrow';
import { decodeStandardBase64 } from '../input/base64.js';
import { clipValue, quoteValue } from '../input/escape-text.js';
import { parseJsonText } from '../input/json-text.js';
import { MAX_VIRTUAL_VOLUME_BYTES } from '../input/limits.js';
import { joinGuest, type GuestPath } from '../paths.js';
import { imageReference } from '../spec/container-type.js';
import type { StorageInit } from './volumes-storage.js';
import { GUEST_KATA_DIR } from './volumes-paths.js';

export const KATA_VIRTUAL_VOLUME_PREFIX = 'io.katacontainers.volume=';
export const IMAGE_GUEST_PULL = 'image_guest_pull';
export const VIRTUAL_VOLUME_TYPES = [
  'direct_block',
  'image_raw_block',
  'layer_raw_block',
  'image_nydus_block',
  'layer_nydus_block',
  'image_nydus_fs',
  'layer_nydus_fs',
  IMAGE_GUEST_PULL,
] as const;
/** Storage fstype of a guest-pulled rootfs (`overlay`; `overlayfs` was a 2025 bug, 04dedda6ed). */
export const GUEST_PULL_FSTYPE = 'overlay';

/** The JSON fields kata-ts reads; others are kept and ignored. */
export interface KataVirtualVolume {
  readonly volume_type: string;
  readonly source?: string;
  readonly fs_type?: string;
  readonly options?: readonly string[];
  readonly image_pull?: { readonly metadata?: Readonly<Record<string, string>> };
  readonly [other: string]: unknown;
}

/** base64 (standard alphabet, padded) of the JSON, without empty fields — as kata-types `to_base64`. */
export function encodeVirtualVolume(v: KataVirtualVolume): string {
  return Buffer.from(JSON.stringify(v)).toString('base64');
}

/** The single mount `adjust_rootfs_mounts()` substitutes under force guest pull. */
export const FORCE_GUEST_PULL_OPTION = `${KATA_VIRTUAL_VOLUME_PREFIX}${encodeVirtualVolume({ volume_type: IMAGE_GUEST_PULL })}`;

/**
 * Decodes one option's payload; errors carry the reference's text with at most a short prefix of
 * the payload. Checked without a regex (ts/input/base64.ts) and capped at MAX_VIRTUAL_VOLUME_BYTES.
 */
export function decodeVirtualVolume(b64: string): Result<KataVirtualVolume, string> {
  const bad = (why: string) =>
    err(`Failed to decode KataVirtualVolume from base64: ${clipValue(b64)} (${why})`);
  if (b64.length > MAX_VIRTUAL_VOLUME_BYTES)
    return bad(`larger than ${MAX_VIRTUAL_VOLUME_BYTES} bytes (MAX_VIRTUAL_VOLUME_BYTES)`);
  const bytes = b64 === '' ? null : decodeStandardBase64(b64);
  if (bytes === null) return bad('not standard padded base64');
  const json = parseJsonText(bytes.toString('utf8'));
  if (json.isErr()) return bad(json.error.message);
  const v = json.value;
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    typeof (v as { volume_type?: unknown }).volume_type !== 'string'
  ) {
    return bad('expected a JSON object with a string volume_type');
  }
  return ok(v as KataVirtualVolume);
}

/** The first option carrying a virtual volume, or undefined. */
export function virtualVolumeOption(options: readonly string[]): string | undefined {
  return options.find((o) => o.startsWith(KATA_VIRTUAL_VOLUME_PREFIX));
}

export interface GuestPullRootfs {
  readonly storage: StorageInit;
  readonly guestRootfs: GuestPath;
}

function sortedObject(entries: Iterable<[string, string]>): Record<string, string> {
  return Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The Storage for a virtual volume rootfs of `containerId`. Metadata = the volume's image_pull
 * metadata with all spec annotations on top, keys sorted (runtime-go order; runtime-rs uses a
 * HashMap, so any order is valid for the agent).
 */
export function planVirtualVolumeRootfs(
  containerId: string,
  volume: KataVirtualVolume,
  annotations: Readonly<Record<string, string>>,
): Result<GuestPullRootfs, string> {
  if (volume.volume_type !== IMAGE_GUEST_PULL) {
    return err(
      `Error in handle virtual volume storage with unsupported type: ${quoteValue(volume.volume_type)}`,
    );
  }
  const image = imageReference(annotations);
  if (image.isErr()) return err(image.error.message);
  const guestRootfs = joinGuest(GUEST_KATA_DIR, containerId, 'rootfs');
  if (guestRootfs.isErr()) return err(guestRootfs.error.message);
  const metadata = sortedObject(
    new Map([...Object.entries(volume.image_pull?.metadata ?? {}), ...Object.entries(annotations)]),
  );
  return ok({
    guestRootfs: guestRootfs.value,
    storage: {
      driver: IMAGE_GUEST_PULL,
      driverOptions: [`${IMAGE_GUEST_PULL}=${JSON.stringify({ metadata })}`],
      source: image.value,
      fstype: GUEST_PULL_FSTYPE,
      options: [],
      mountPoint: guestRootfs.value,
    },
  });
}
