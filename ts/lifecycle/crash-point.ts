// Fault injection for the reliability tests: with `KATA_TS_CRASH_AT=<point>` the process
// SIGKILLs itself when it reaches that point — after the step's side effect, before the state
// says it is done — the worst moment for cleanup. Cheap and deterministic; a no-op otherwise.

/** Every point a crash can be injected at, in lifecycle order. */
export const CRASH_POINTS = [
  'dirs',
  'cgroups',
  'vm',
  'place-vmm',
  'agent',
  'create-sandbox',
  'hotplug',
  'copy',
  'create-container',
  'start-container',
  'running',
  'stop',
  /** Inside `cleanup`, after the processes are gone and before the cgroups are deleted. */
  'cleanup',
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

export function crashPoint(point: CrashPoint, env: NodeJS.ProcessEnv = process.env): void {
  if (env['KATA_TS_CRASH_AT'] === point) process.kill(process.pid, 'SIGKILL');
}
