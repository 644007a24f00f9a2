import { readFileSync, readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lower the scheduling priority of the calling thread only (Linux: a thread's id is a valid
 * `setpriority` target, and /proc/thread-self names it). Build threads call it so that the work
 * of a swap yields CPU to the threads serving requests; an unprivileged thread cannot raise its
 * priority again, so only threads that exit after the build use it. Returns the niceness it has
 * now, or null where it could not be set (another OS, no /proc): the build then runs at normal
 * priority, which is slower for requests but not wrong.
 */
export function niceCurrentThread(nice: number): number | null {
  if (process.platform !== 'linux') return null;
  const tid = currentThreadId();
  if (tid === null) return null;
  try {
    setPriority(tid, nice);
    return nice;
  } catch {
    return null;
  }
}

/** The calling thread's OS thread id (Linux: /proc/thread-self names it), or null elsewhere. */
export function currentThreadId(): number | null {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isSafeInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** The niceness in a thread's /proc/.../stat line (field 19; the command name may hold spaces and parentheses). */
export function niceFromStat(stat: string): number {
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

/** The calling thread's niceness (Linux: /proc/thread-self/stat), or null where it cannot be read. */
export function currentThreadNice(): number | null {
  if (process.platform !== 'linux') return null;
  try {
    const nice = niceFromStat(readFileSync('/proc/thread-self/stat', 'utf8'));
    return Number.isInteger(nice) ? nice : null;
  } catch {
    return null;
  }
}
