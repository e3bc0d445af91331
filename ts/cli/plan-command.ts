import type { Command } from 'commander';
import type { CommandContext } from './main.js';

export function registerPlanCommand(program: Command, ctx: CommandContext): void {
  program.command('plan').description('print the resource plan for a sandbox').action(() => {
    ctx.io.err('kata-ts: plan: not implemented yet\n');
    ctx.exitCode = 1;
  });
}
