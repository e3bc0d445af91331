// Kubernetes volume directories on the host: the kata-types `k8s.rs` predicates (vectors §2.1)
// and the kata-ts copy allowlist (behaviour.md feature 4), which unlike the reference is anchored
// at `<kubelet root>/pods/<uid>/volumes/` and applied to canonical paths.
import path from 'node:path';

export const K8S_EMPTY_DIR = 'kubernetes.io~empty-dir';
export const K8S_CONFIGMAP = 'kubernetes.io~configmap';
export const K8S_SECRET = 'kubernetes.io~secret';
export const K8S_PROJECTED = 'kubernetes.io~projected';
export const K8S_DOWNWARD_API = 'kubernetes.io~downward-api';

/** Volume plugins whose directories may be copied (and are watched) under `shared_fs = none`. */
export const COPY_ALLOWLIST: readonly string[] = [
  K8S_CONFIGMAP,
  K8S_SECRET,
  K8S_DOWNWARD_API,
  K8S_PROJECTED,
];

/** Path components, as Rust's `Path` sees them: empty components (`//`) and a trailing `/` vanish. */
function components(p: string): string[] {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  return p.startsWith('/') ? ['/', ...parts] : parts;
}

/** kata-types `is_special_dir`: the parent's name is `marker` and the parent has a parent. */
export function isSpecialDir(p: string, marker: string): boolean {
  const c = components(p);
  return c.length >= 3 && c[c.length - 2] === marker;
}

export const isEmptyDir = (p: string): boolean => isSpecialDir(p, K8S_EMPTY_DIR);
export const isConfigmap = (p: string): boolean => isSpecialDir(p, K8S_CONFIGMAP);
export const isSecret = (p: string): boolean => isSpecialDir(p, K8S_SECRET);
export const isProjected = (p: string): boolean => isSpecialDir(p, K8S_PROJECTED);
export const isDownwardApi = (p: string): boolean => isSpecialDir(p, K8S_DOWNWARD_API);

/** A kubelet volume directory: `<root>/pods/<uid>/volumes/<plugin>/<name>`. */
export interface KubeletVolume {
  readonly uid: string;
  readonly plugin: string;
  readonly name: string;
  /** The volume directory itself. */
  readonly dir: string;
}

const plain = (s: string | undefined): s is string =>
  s !== undefined && s !== '' && s !== '.' && s !== '..';

/**
 * The allowlisted kubelet volume `p` lies in (the volume dir or below it), or null. `p` must be
 * absolute and free of `..` (a canonical path, or the lexical prefix of one); `kubeletRoots` are
 * the configured root and its canonical form.
 */
export function allowlistedVolume(
  p: string,
  kubeletRoots: readonly string[],
): KubeletVolume | null {
  for (const root of kubeletRoots) {
    const base = root === '/' ? '' : root.replace(/\/+$/, '');
    if (!p.startsWith(`${base}/pods/`)) continue;
    const rest = p.slice(base.length + '/pods/'.length).split('/');
    const [uid, volumes, plugin, name] = rest;
    if (
      !plain(uid) ||
      volumes !== 'volumes' ||
      !plain(plugin) ||
      !COPY_ALLOWLIST.includes(plugin) ||
      !plain(name)
    )
      continue;
    if (rest.slice(4).some((s) => s === '..')) continue;
    return { uid, plugin, name, dir: `${base}/pods/${uid}/volumes/${plugin}/${name}` };
  }
  return null;
}

/** The part of a raw path before its first `..` component, normalized (`/a/b/../c` → `/a/b`). */
export function lexicalPrefix(raw: string): string {
  const parts = raw.split('/');
  const at = parts.indexOf('..');
  const kept = at < 0 ? parts : parts.slice(0, at);
  return path.posix.normalize(kept.join('/') || '/');
}

/** Same kubelet volume (by uid, plugin and name), wherever the root is spelled. */
export function sameVolume(a: KubeletVolume, b: KubeletVolume): boolean {
  return a.uid === b.uid && a.plugin === b.plugin && a.name === b.name;
}
