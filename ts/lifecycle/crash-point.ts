// Fault injection for the reliability tests: once a crash point is armed (armCrashPoint, called
// only by the test entry point __test__/fixtures/kata-ts-test-cli.ts), the process SIGKILLs itself
// when it reaches that point — after the step's side effect, before the state says it is done —
// the worst moment for cleanup. Nothing in the shipped CLI or shim arms one, and nothing here
// reads the environment: unarmed, crashPoint() is a no-op.

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

export function isCrashPoint(s: string): s is CrashPoint {
  return (CRASH_POINTS as readonly string[]).includes(s);
}

let armed: CrashPoint | null = null;

/** Makes this process SIGKILL itself at `point` (null disarms). For tests only. */
export function armCrashPoint(point: CrashPoint | null): void {
  armed = point;
}

export function crashPoint(point: CrashPoint): void {
  if (armed === point) process.kill(process.pid, 'SIGKILL');
}
