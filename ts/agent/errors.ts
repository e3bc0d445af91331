// Agent channel errors as data. Native transport codes (ts/native.ts) become one `kind` each;
// a ttrpc status keeps its numeric google.rpc code, its name and the agent's message.
import type { NativeError } from '../native.js';

/** google.rpc.Code names by value (what ttrpc carries in Status.code). */
export const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export type StatusName = (typeof STATUS_NAMES)[number] | 'UNKNOWN_CODE';

export type AgentError =
  /** Bad dial options (missing path/port/cid, unknown kind). */
  | { readonly kind: 'invalid-options'; readonly message: string }
  /** Could not connect before the dial timeout (message names address, step and errno). */
  | { readonly kind: 'dial'; readonly message: string }
  /** This side closed the connection. */
  | { readonly kind: 'closed'; readonly message: string }
  /** The connection broke: agent gone, I/O error, malformed frame. */
  | { readonly kind: 'connection-lost'; readonly message: string }
  /** No response within the call's timeout. */
  | { readonly kind: 'timeout'; readonly method: string; readonly message: string }
  /** The request exceeds ttrpc's 4 MiB limit; nothing was sent. */
  | { readonly kind: 'too-large'; readonly method: string; readonly message: string }
  /** The agent answered with a non-OK status. */
  | {
      readonly kind: 'status';
      readonly method: string;
      readonly code: number;
      readonly codeName: StatusName;
      readonly message: string;
    }
  /** The response did not decode as the method's response message. */
  | { readonly kind: 'decode'; readonly method: string; readonly message: string }
  /** Any other native failure (panic, addon not loaded). */
  | { readonly kind: 'native'; readonly code: string; readonly message: string };

export function statusName(code: number): StatusName {
  return STATUS_NAMES[code] ?? 'UNKNOWN_CODE';
}

/** Maps a native error from the transport binding to an `AgentError` for `method`. */
/** google.rpc.Code DEADLINE_EXCEEDED. */
const DEADLINE_EXCEEDED = 4;

export function fromNative(e: NativeError, method: string): AgentError {
  switch (e.code) {
    case 'TRANSPORT_INVALID':
      return { kind: 'invalid-options', message: e.message };
    case 'TRANSPORT_DIAL':
      return { kind: 'dial', message: e.message };
    case 'TRANSPORT_CLOSED':
      return { kind: 'closed', message: e.message };
    case 'TRANSPORT_LOST':
      return { kind: 'connection-lost', message: e.message };
    case 'TTRPC_TIMEOUT':
      return { kind: 'timeout', method, message: e.message };
    case 'TTRPC_TOO_LARGE':
      return { kind: 'too-large', method, message: e.message };
    case 'TTRPC_STATUS': {
      // The binding puts `<code> <NAME> ` first; the rest is the readable message.
      const m = /^(-?\d+) \S+ (.*)$/s.exec(e.message);
      const code = m ? Number(m[1]) : 2;
      // ttrpc servers enforce `timeout_nano` too: whichever side notices first, it is a timeout.
      if (code === DEADLINE_EXCEEDED)
        return { kind: 'timeout', method, message: m?.[2] ?? e.message };
      return {
        kind: 'status',
        method,
        code,
        codeName: statusName(code),
        message: m?.[2] ?? e.message,
      };
    }
    default:
      return { kind: 'native', code: e.code, message: e.message };
  }
}
