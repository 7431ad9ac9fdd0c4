// The compile process started as soon as the direct mode has missed (cli/main.ts), so that Node's start and the
// compiler's imports there run while this process loads and parses the command (25-45 ms); runChild sends it the job.
import { type ChildProcess, fork } from 'node:child_process';

let started: { child: ChildProcess; at: number } | undefined;

/** Starts cli/child.ts with no job: it loads and waits for one (or ends when this process ends without sending it). */
export function prefork(): void {
  // detached: its own process group, which runChild kills with everything it started (cli/command.ts)
  const child = fork(new URL('./child.js', import.meta.url), [], { stdio: [0, 2, 2, 'ipc'], detached: true });
  started = { child, at: performance.now() };
  child.on('error', () => {}); // runChild forks its own where this one could not start
  // it keeps this process alive only once taken: `compile --help` or a bad flag end it by ending
  child.unref();
  child.channel?.unref();
}

/** The started compile process (once), ready for its job, and when it started; or undefined. */
export function takePrefork(): { child: ChildProcess; at: number } | undefined {
  const taken = started;
  started = undefined;
  if (!taken || taken.child.exitCode !== null || taken.child.signalCode !== null || !taken.child.connected) return undefined;
  taken.child.ref();
  taken.child.channel?.ref();
  return taken;
}
