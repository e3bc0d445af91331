// Size caps on hostile input, in one place so the README table and the tests name the same
// numbers. Each cap says where its value comes from; Kata itself caps none of these files.

const KiB = 1024;
const MiB = 1024 * KiB;

/**
 * `configuration.toml`. Kata's shipped QEMU template is ~30 KiB; a config 30 times that is not a
 * config. The file comes from the operator, but `--config` may be pointed at anything.
 */
export const MAX_CONFIG_FILE_BYTES = 1 * MiB;

/**
 * A bundle's `config.json`. Generous: it carries every annotation and mount of a container, and
 * must let an oversized annotation reach the annotation check (and its clearer message).
 */
export const MAX_SPEC_FILE_BYTES = 16 * MiB;

/** A bundle's `rootfs-mounts.json` (containerd's rootfs mounts, options included). */
export const MAX_ROOTFS_MOUNTS_FILE_BYTES = 16 * MiB;

/** `--host-facts` (path facts for every mount source of every container). */
export const MAX_HOST_FACTS_FILE_BYTES = 16 * MiB;

/**
 * One `io.katacontainers.config.*` annotation value. Kubernetes refuses a pod whose annotations
 * together exceed 256 KiB (apimachinery `TotalAnnotationSizeLimitB`), so no value a kubelet
 * passes on is larger; this includes `cc_init_data` (base64 of gzip, before decoding).
 */
export const MAX_ANNOTATION_VALUE_BYTES = 256 * KiB;

/**
 * The base64 payload of one `io.katacontainers.volume=` rootfs mount option. A KataVirtualVolume
 * is a few hundred bytes of JSON (type, source, fs type, options, image-pull metadata); the same
 * 256 KiB as an annotation leaves room for large metadata.
 */
export const MAX_VIRTUAL_VOLUME_BYTES = 256 * KiB;

/** How much of an offending value an error line shows (characters, before escaping). */
export const MAX_SHOWN_VALUE_CHARS = 64;

/**
 * A message that echoes its offending value whole is cut to MAX_SHOWN_VALUE_CHARS of it when the
 * value is longer than this: PATH_MAX, so a path is always shown whole, an 8 MiB annotation never.
 */
export const MAX_ECHOED_VALUE_CHARS = 4096;

/**
 * The longest error line printed (characters after escaping, `kata-ts: ` included): room for a
 * PATH_MAX path and a message, never a whole file or value.
 */
export const MAX_ERROR_LINE_CHARS = 8 * KiB;
