// Host end of the test guest's shell (ts/guest/guest-init.sh booted with SHELL_BOOT_PARAMS): one
// command per line on the agent virtio-serial port, output then `__END__ <rc>`. Stands in for the
// agent in device tests, where what matters is what the guest kernel sees.
import net from 'node:net';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { errAsync, ResultAsync } from 'neverthrow';

export interface GuestShellError {
  readonly kind: 'guest-shell';
  readonly message: string;
}

export interface GuestRun {
  readonly output: string;
  readonly rc: number;
}

/** vmlinux + initramfs built by `make guest` (ts/guest/build-guest.sh). */
export interface GuestImage {
  readonly kernel: string;
  readonly initrd: string;
}

/** Kernel args that make a TCG boot quick (peers.md). */
export const FAST_BOOT_PARAMS =
  'console=ttyS0 panic=-1 quiet 8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check';

/** Kernel args that make the guest's /init serve this shell instead of starting the agent. */
export const SHELL_BOOT_PARAMS = `${FAST_BOOT_PARAMS} katats.init=shell`;

/** The built guest under `dir`, or null when `make guest` has not run. */
export function guestImage(dir: string): GuestImage | null {
  const kernel = path.join(dir, 'vmlinux');
  const initrd = path.join(dir, 'initramfs.cpio.gz');
  return existsSync(kernel) && existsSync(initrd) ? { kernel, initrd } : null;
}

const fail = (message: string): GuestShellError => ({ kind: 'guest-shell', message });

export class GuestShell {
  readonly #socket: net.Socket;
  #buffer = '';
  #waiter: (() => void) | null = null;
  #closed = false;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.#buffer += d;
      this.#waiter?.();
    });
    socket.on('close', () => {
      this.#closed = true;
      this.#waiter?.();
    });
    socket.on('error', () => undefined);
  }

  /** Connects to the agent chardev socket (connect right after spawn: the guest's READY is not replayed). */
  static connect(socketPath: string): ResultAsync<GuestShell, GuestShellError> {
    return ResultAsync.fromPromise(
      new Promise<GuestShell>((resolve, reject) => {
        const s = net.createConnection(socketPath);
        s.once('connect', () => resolve(new GuestShell(s)));
        s.once('error', reject);
      }),
      (e) => fail(`connect ${socketPath}: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  /** Resolves with the text before `marker` once it arrived (consumed), or fails on timeout. */
  #until(
    marker: RegExp,
    timeoutMs: number,
    what: string,
  ): ResultAsync<RegExpExecArray, GuestShellError> {
    return ResultAsync.fromPromise(
      new Promise<RegExpExecArray>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.#waiter = null;
          reject(
            fail(
              `${what}: nothing within ${timeoutMs} ms (got ${JSON.stringify(this.#buffer.slice(-200))})`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const m = marker.exec(this.#buffer);
          if (m) {
            clearTimeout(timer);
            this.#waiter = null;
            this.#buffer = this.#buffer.slice(m.index + m[0].length);
            resolve(m);
          } else if (this.#closed) {
            clearTimeout(timer);
            this.#waiter = null;
            reject(fail(`${what}: the guest closed the port`));
          }
        };
        this.#waiter = check;
        check();
      }),
      (e) => e as GuestShellError,
    );
  }

  /** Waits for the guest's `READY` (its /init opened the port). */
  ready(timeoutMs: number): ResultAsync<void, GuestShellError> {
    return this.#until(/READY\n/, timeoutMs, 'guest READY').map(() => undefined);
  }

  /** Runs one shell line in the guest. */
  run(command: string, timeoutMs = 10_000): ResultAsync<GuestRun, GuestShellError> {
    if (command.includes('\n')) return errAsync(fail('one line per command'));
    this.#socket.write(`${command}\n`);
    return this.#until(/([\s\S]*?)__END__ (\d+)\n/, timeoutMs, command).map((m) => ({
      output: m[1]!,
      rc: Number(m[2]),
    }));
  }

  close(): void {
    this.#socket.destroy();
  }
}
