// `kata-ts vcpus`: the exact vCPU arithmetic on its own, for scripts and a quick native check.
import type { Command } from 'commander';
import { errorLine, quoteValue } from '../input/escape-text.js';
import { call } from '../native.js';
import type { CommandContext } from './main.js';

function parseContainer(text: string): { quotaUs: number; periodUs: number } | null {
  const m = /^(-?\d+)\/(\d+)$/.exec(text);
  return m ? { quotaUs: Number(m[1]), periodUs: Number(m[2]) } : null;
}

export function registerVcpusCommand(program: Command, ctx: CommandContext): void {
  program
    .command('vcpus')
    .description('exact vCPUs for default_vcpus plus containers given as QUOTA/PERIOD (µs)')
    .option('--default <decimal>', 'default_vcpus as decimal text', '1')
    .argument('[containers...]', 'container CPU limits as QUOTA/PERIOD, e.g. 50000/100000')
    .action((containers: string[], opts: { default: string }) => {
      const parsed = containers.map((c) => ({ text: c, value: parseContainer(c) }));
      const bad = parsed.find((p) => p.value === null);
      if (bad) {
        ctx.io.err(
          `${errorLine('vcpus', `container ${quoteValue(bad.text)}: expected QUOTA/PERIOD such as 50000/100000`)}\n`,
        );
        ctx.exitCode = 2;
        return;
      }
      const result = call((n) =>
        n.calcSandboxVcpus(
          opts.default,
          parsed.map((p) => p.value!),
        ),
      );
      if (result.isErr()) {
        ctx.io.err(`${errorLine('vcpus', result.error.message)}\n`);
        ctx.exitCode = 2;
        return;
      }
      ctx.io.out(
        `${JSON.stringify({ exact: result.value.exact, vcpus: Math.max(result.value.ceil, 1) })}\n`,
      );
    });
}
