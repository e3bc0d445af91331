// Sandbox state on disk: `<root>/<sid>/state.json`, written atomically (temp file in the same
// directory, fsync, rename) so a crash leaves the old or the new document, never half of one.
// Root: option, else `KATA_TS_STATE_ROOT`, else /run/kata-ts.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { err, ok, type Result } from 'neverthrow';
import { parseJsonText } from '../input/json-text.js';
import { replaceFile } from '../input/replace-file.js';
import { hostPath, joinHost, type HostPath } from '../paths.js';
import { stateError, type LifecycleError } from './errors.js';
import { SandboxStateSchema, type SandboxState } from './state-schema.js';

export const DEFAULT_STATE_ROOT = '/run/kata-ts';

/** The state root: explicit, else `KATA_TS_STATE_ROOT`, else /run/kata-ts. */
export function stateRoot(
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): Result<HostPath, LifecycleError> {
  const value = explicit ?? env['KATA_TS_STATE_ROOT'] ?? DEFAULT_STATE_ROOT;
  return hostPath(value).mapErr((e) => stateError('', `state root: ${e.message}`));
}

/** Reads and writes the state of sandboxes under one root. */
export class StateStore {
  constructor(readonly root: HostPath) {}

  /** `<root>/<sid>`: the sandbox's state dir (also holds its VM sockets and logs). */
  dir(sandboxId: string): Result<HostPath, LifecycleError> {
    return joinHost(this.root, sandboxId).mapErr((e) => stateError(sandboxId, e.message));
  }

  file(sandboxId: string): Result<HostPath, LifecycleError> {
    return this.dir(sandboxId).andThen((d) =>
      joinHost(d, 'state.json').mapErr((e) => stateError(sandboxId, e.message)),
    );
  }

  /** The state, validated; `not-found` when the sandbox has none. */
  read(sandboxId: string): Result<SandboxState, LifecycleError> {
    return this.file(sandboxId).andThen((file) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        return err(
          code === 'ENOENT'
            ? ({
                kind: 'not-found',
                sandboxId,
                message: `no sandbox ${sandboxId} (no ${file})`,
              } as const)
            : stateError(sandboxId, `cannot read ${file}: ${code ?? String(e)}`),
        );
      }
      // No V8 message: it quotes the file's content.
      const json = parseJsonText(text);
      if (json.isErr()) return err(stateError(sandboxId, `${file}: ${json.error.message}`));
      const parsed = SandboxStateSchema.safeParse(json.value);
      if (!parsed.success) {
        const issues = parsed.error.issues
          .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
          .join('; ');
        return err(stateError(sandboxId, `${file}: ${issues}`));
      }
      return ok(parsed.data);
    });
  }

  /** Writes the whole state atomically (the dir is created when missing). */
  write(state: SandboxState): Result<SandboxState, LifecycleError> {
    return this.dir(state.sandboxId).andThen((dir) =>
      this.file(state.sandboxId).andThen((file) => {
        let made: string | undefined;
        try {
          made = mkdirSync(dir, { recursive: true, mode: 0o700 });
        } catch (e) {
          return err(stateError(state.sandboxId, `cannot write ${file}: ${(e as Error).message}`));
        }
        // A temp file with an unguessable name, created exclusively without following links
        // (the dir may be shared with a rootless VMM user), fsync'ed and renamed over the file.
        const written = replaceFile(file, `${JSON.stringify(state, null, 2)}\n`, 0o600);
        if (written.isOk()) return ok(state);
        // A first write that failed (disk full) leaves no empty state dir behind.
        if (made !== undefined) rmSync(dir, { recursive: true, force: true });
        return err(stateError(state.sandboxId, `${file}: ${written.error.what}`));
      }),
    );
  }

  /** Read, change, write back. */
  update(
    sandboxId: string,
    change: (s: SandboxState) => SandboxState,
  ): Result<SandboxState, LifecycleError> {
    return this.read(sandboxId).andThen((s) => this.write(change(s)));
  }

  /** Removes the sandbox's state dir (last step of cleanup). */
  remove(sandboxId: string): Result<void, LifecycleError> {
    return this.dir(sandboxId).andThen((dir) => {
      try {
        rmSync(dir, { recursive: true, force: true });
        return ok(undefined);
      } catch (e) {
        return err(stateError(sandboxId, `cannot remove ${dir}: ${(e as Error).message}`));
      }
    });
  }

  /** Sandbox ids with a state dir. */
  list(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch {
      return [];
    }
  }
}
