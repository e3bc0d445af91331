// Runs the CLI in-process with captured stdout/stderr, and builds temp bundles/configs.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../ts/cli/main.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const exampleConfig = path.join(repoRoot, 'examples/configuration-qemu.toml');
export const exampleBundle = path.join(repoRoot, 'examples/bundle');

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(args: string[]): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { out: (s) => (stdout += s), err: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

/** `runCli`'s result plus whether the process had to be killed at the deadline. */
export interface SpawnedRun extends CliRun {
  readonly timedOut: boolean;
}

/**
 * Runs the real CLI (`node --import=tsx ts/cli/run.ts …`) as its own process: a hang (a FIFO read
 * that never returns) ends at `timeoutMs` with the process killed by its pid, and what it printed
 * is what a user would see, stack traces included.
 */
export function spawnCli(args: string[], timeoutMs = 60_000): Promise<SpawnedRun> {
  const child = spawn(
    process.execPath,
    ['--import=tsx', path.join(repoRoot, 'ts/cli/run.ts'), ...args],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KATA_TS_LOG: 'silent' },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, timedOut });
    });
  });
}

/** A temp dir removed on teardown. */
export class Scratch {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'kata-ts-test-'));

  /** Writes a config: the example with `edits` applied as [section, key, TOML value] lines. */
  config(edits: [string, string, string][] = [], name = 'configuration.toml'): string {
    let text = readFileSync(exampleConfig, 'utf8');
    for (const [section, key, value] of edits) {
      const header = `[${section}]`;
      const at = text.indexOf(`\n${header}\n`);
      if (at < 0) throw new Error(`no section ${header} in example config`);
      const keyLine = new RegExp(`^${key}\\s*=.*$`, 'm');
      const sectionEnd = text.indexOf('\n[', at + header.length + 2);
      const body = text.slice(at, sectionEnd < 0 ? undefined : sectionEnd);
      const edited = keyLine.test(body)
        ? body.replace(keyLine, `${key} = ${value}`)
        : `${body.trimEnd()}\n${key} = ${value}\n`;
      text = text.slice(0, at) + edited + (sectionEnd < 0 ? '' : text.slice(sectionEnd));
    }
    const file = path.join(this.dir, name);
    writeFileSync(file, text);
    return file;
  }

  /** Writes a bundle whose config.json is the example spec with `patch` merged in. */
  bundle(name: string, patch: (spec: Record<string, any>) => void = () => {}): string {
    const spec = JSON.parse(readFileSync(path.join(exampleBundle, 'config.json'), 'utf8'));
    patch(spec);
    const dir = path.join(this.dir, name);
    mkdirSync(path.join(dir, 'rootfs'), { recursive: true });
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
    return dir;
  }

  file(name: string, content: string): string {
    const file = path.join(this.dir, name);
    writeFileSync(file, content);
    return file;
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Host facts used by plan tests so results do not depend on the machine. */
export const HOST_FACTS = JSON.stringify({
  cgroupVersion: 'v1',
  hostCpus: 8,
  hostMemoryMiB: 16384,
  guestProtection: 'none',
  blockDevices: {},
});
