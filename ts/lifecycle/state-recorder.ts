// The owning process's view of one sandbox's state: every change is written through at once
// (StateStore.write is synchronous and atomic), so the file always says what exists.
import { err, ok, type Result } from 'neverthrow';
import type { LifecycleError } from './errors.js';
import type { Phase, SandboxState } from './state-schema.js';
import type { StateStore } from './state-store.js';

/** Thrown inside lifecycle steps and turned back into an `Err` at the step's edge. */
export class StepFailure extends Error {
  constructor(readonly error: LifecycleError) {
    super(error.message);
  }
}

/**
 * Inside a step body that reports failures by throwing StepFailure (caught at its edge): the
 * value of a helper's Result, or its error raised.
 */
export function unwrapStep<T>(r: Result<T, LifecycleError>): T {
  if (r.isErr()) throw new StepFailure(r.error);
  return r.value;
}

export class StateRecorder {
  #state: SandboxState;

  constructor(
    readonly store: StateStore,
    state: SandboxState,
  ) {
    this.#state = state;
  }

  get state(): SandboxState {
    return this.#state;
  }

  /** Applies `change` and writes the result; a failed write stops the step. */
  update(change: (s: SandboxState) => SandboxState): SandboxState {
    return unwrapStep(this.tryUpdate(change));
  }

  /** Applies `change` and writes the result, or the write's error (the state stays as it was). */
  tryUpdate(change: (s: SandboxState) => SandboxState): Result<SandboxState, LifecycleError> {
    const written = this.store.write(change(this.#state));
    if (written.isErr()) return err(written.error);
    this.#state = written.value;
    return ok(this.#state);
  }

  dir(path: string, phase: Phase): void {
    unwrapStep(this.tryDir(path, phase));
  }

  /**
   * Records a directory we make (or are about to make). `ifEmpty`: a parent that other sandboxes
   * may share once it exists, so cleanup removes it only while it is empty.
   */
  tryDir(path: string, phase: Phase, ifEmpty = false): Result<void, LifecycleError> {
    const entry = ifEmpty ? { path, phase, ifEmpty } : { path, phase };
    return this.tryUpdate((s) => ({
      ...s,
      dirs: s.dirs.some((d) => d.path === path)
        ? s.dirs.map((d) => (d.path === path ? { ...d, phase } : d))
        : [...s.dirs, entry],
    })).map(() => undefined);
  }

  device(d: { id: string; containerId: string; pathOnHost: string }, phase: Phase): void {
    this.update((s) => ({
      ...s,
      devices: s.devices.some((x) => x.id === d.id && x.phase !== 'removed')
        ? s.devices.map((x) => (x.id === d.id && x.phase !== 'removed' ? { ...x, phase } : x))
        : [...s.devices, { ...d, phase }],
    }));
  }

  container(
    id: string,
    change: (c: SandboxState['containers'][number]) => SandboxState['containers'][number],
  ): void {
    this.update((s) => ({
      ...s,
      containers: s.containers.map((c) => (c.id === id ? change(c) : c)),
    }));
  }
}
