// What the pod's task logic can fail with, as data. Only the server edge (task-service.ts)
// turns these into ttrpc statuses; containerd maps the codes to its errdefs (NOT_FOUND →
// ErrNotFound, …) and shows the message.
import { formatLifecycleError, type LifecycleError } from '../lifecycle/errors.js';
import { Code, type RpcStatus } from './ttrpc-server.js';

/** A Task API feature the shim (or the guest's agent) does not provide; answered UNIMPLEMENTED, never OK. */
export type Unsupported = 'update' | 'stats';

export type TaskError =
  | { readonly kind: 'not-found'; readonly message: string }
  | { readonly kind: 'already-exists'; readonly message: string }
  | { readonly kind: 'failed-precondition'; readonly message: string }
  | { readonly kind: 'invalid-argument'; readonly message: string }
  | { readonly kind: 'unsupported'; readonly feature: Unsupported; readonly message: string }
  /** The lifecycle (sandbox, container, VM) failed. */
  | { readonly kind: 'lifecycle'; readonly error: LifecycleError }
  /** The agent refused or could not be reached for a process of an existing container. */
  | { readonly kind: 'agent'; readonly message: string };

const UNSUPPORTED_WHY: Record<Unsupported, string> = {
  update: 'Update: the guest agent does not implement UpdateContainer',
  stats: 'Stats: the guest agent does not implement StatsContainer',
};

/** The `unsupported` error for `feature`, naming the task. */
export function unsupported(feature: Unsupported, taskId: string): TaskError {
  return {
    kind: 'unsupported',
    feature,
    message: `kata-ts shim: ${taskId}: ${UNSUPPORTED_WHY[feature]}`,
  };
}

function lifecycleCode(e: LifecycleError): number {
  switch (e.kind) {
    case 'not-found':
      return Code.NOT_FOUND;
    case 'exists':
      return Code.ALREADY_EXISTS;
    case 'input':
      return Code.INVALID_ARGUMENT;
    default:
      return Code.INTERNAL;
  }
}

/** The ttrpc status of an error. */
export function rpcStatus(e: TaskError): RpcStatus {
  switch (e.kind) {
    case 'not-found':
      return { code: Code.NOT_FOUND, message: e.message };
    case 'already-exists':
      return { code: Code.ALREADY_EXISTS, message: e.message };
    case 'failed-precondition':
      return { code: Code.FAILED_PRECONDITION, message: e.message };
    case 'invalid-argument':
      return { code: Code.INVALID_ARGUMENT, message: e.message };
    case 'unsupported':
      return { code: Code.UNIMPLEMENTED, message: e.message };
    case 'lifecycle':
      return { code: lifecycleCode(e.error), message: formatLifecycleError(e.error).join('; ') };
    case 'agent':
      return { code: Code.INTERNAL, message: e.message };
  }
}
