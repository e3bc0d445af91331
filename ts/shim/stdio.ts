// A process's stdio between containerd's FIFOs and the agent: stdout/stderr are read from the
// agent (ReadStdout/ReadStderr until EOF) and written to the FIFOs; stdin is copied from its FIFO
// with WriteStdin and closed with CloseStdin at EOF or on CloseIO. Output FIFOs are opened
// O_RDWR, as containerd's fifo package does, so opening never blocks on a missing reader.
import { constants, createReadStream, type ReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { EmptySchema } from '@bufbuild/protobuf/wkt';
import { AGENT_SERVICE, type AgentClient } from '../agent/client.js';
import { CloseStdinRequestSchema } from '../gen/agent_pb.js';

export interface StdioPaths {
  readonly stdin: string;
  readonly stdout: string;
  readonly stderr: string;
}

const CHUNK = 32 * 1024;

export class StdioBridge {
  private stdinStream: ReadStream | null = null;
  private stdinEnded: Promise<void> = Promise.resolve();
  private stdinClosed = false;
  /** Resolves once stdout and stderr reached EOF and their FIFOs are closed. */
  readonly done: Promise<void>;

  constructor(
    private readonly agent: AgentClient,
    private readonly containerId: string,
    private readonly execId: string,
    paths: StdioPaths,
    private readonly log: Logger,
    terminal = false,
  ) {
    // A pty has one output stream, read as stdout; containerd gives no stderr FIFO then.
    this.done = Promise.all([
      this.pump(paths.stdout, (n) => agent.readStdout(containerId, execId, n)),
      ...(terminal
        ? []
        : [this.pump(paths.stderr, (n) => agent.readStderr(containerId, execId, n))]),
    ]).then(() => undefined);
    if (paths.stdin !== '') this.copyStdin(paths.stdin);
  }

  private async pump(
    fifo: string,
    read: (n: number) => ReturnType<AgentClient['readStdout']>,
  ): Promise<void> {
    let out: FileHandle | null = null;
    try {
      if (fifo !== '') out = await open(fifo, constants.O_RDWR);
      for (;;) {
        const chunk = await read(CHUNK);
        if (chunk.isErr() || chunk.value.length === 0) return;
        if (out !== null) await out.write(chunk.value);
      }
    } catch (e) {
      this.log.warn({ fifo, err: (e as Error).message }, 'stdio copy failed');
    } finally {
      await out?.close();
    }
  }

  private copyStdin(fifo: string): void {
    const stream = createReadStream(fifo);
    this.stdinStream = stream;
    let chain = Promise.resolve();
    stream.on('data', (chunk) => {
      stream.pause();
      chain = chain.then(async () => {
        await this.agent.writeStdin(this.containerId, this.execId, chunk as Buffer);
        stream.resume();
      });
    });
    this.stdinEnded = new Promise<void>((resolve) => {
      stream.on('end', () => void chain.then(resolve));
      stream.on('error', (e) => {
        this.log.warn({ fifo, err: e.message }, 'stdin copy failed');
        resolve();
      });
    });
    void this.stdinEnded.then(() => this.closeStdin());
  }

  /**
   * CloseIO: containerd's client sends it when its stdin hit EOF, possibly before this side read
   * what is still in the FIFO; the guest's stdin is closed once the FIFO is drained.
   */
  closeIO(): Promise<void> {
    return this.stdinEnded.then(() => this.closeStdin());
  }

  /** CloseStdin in the guest; idempotent. */
  private async closeStdin(): Promise<void> {
    if (this.stdinClosed) return;
    this.stdinClosed = true;
    await this.agent.call(
      AGENT_SERVICE,
      'CloseStdin',
      CloseStdinRequestSchema,
      EmptySchema,
      { containerId: this.containerId, execId: this.execId },
      10_000,
    );
  }
}
