// Calls on the host-wide shim's private service (`kata-ts.shim.v1.Daemon`): `start` registers a
// container before containerd dials, `delete` asks the daemon to release a sandbox. JSON
// payloads over the same native ttrpc transport the Task service uses.
import { ResultAsync } from 'neverthrow';
import { callAsync } from '../native.js';
import { DAEMON_SERVICE } from './address.js';

/** One call; Err is a one-line reason (the daemon's status message or the transport's). */
export function callDaemon(
  socket: string,
  method: 'Register' | 'Release',
  body: unknown,
  timeoutMs: number,
): ResultAsync<void, string> {
  return callAsync((n) => n.dialAgent({ kind: 'unix', path: socket, timeoutMs: 5_000 }))
    .mapErr((e) => `cannot reach the kata-ts shim on ${socket}: ${e.message}`)
    .andThen((conn) =>
      callAsync(() =>
        conn.call(DAEMON_SERVICE, method, Buffer.from(JSON.stringify(body)), timeoutMs),
      )
        .map(() => {
          conn.close();
        })
        .mapErr((e) => {
          conn.close();
          return `${method}: ${e.message}`;
        }),
    );
}
