/**
 * The policy (TF Serving's AspiredVersionPolicy): a pure function from the manager's state to
 * the next action. No I/O, no clocks, no randomness: unit-tested with plain objects.
 *
 * Rules, in order (availability first, then "never starve"):
 * 1. Closed: nothing. A build in flight: wait. A started build is never superseded; it
 *    finishes and serves unless it fails (superseding every build under a steady publish rate
 *    starved serving: 12 of 28 versions were never served).
 * 2. The head of the queue decides. Requests act on the state *when they run*, not when they
 *    were made: a rollback targets whatever is previous by then, a refresh builds whatever the
 *    folders say by then (so the newest version is built next, and older queued ones are moot).
 * 3. Refresh: when the folders cannot be resolved, report why (or that a writer is at work).
 *    The aspired content equal to the active one is unchanged; equal to the version rolled
 *    back from is pinned away (until something new is published or a reload is forced);
 *    equal to content already rejected is not rebuilt unless forced. Otherwise build it.
 * 4. Rollback: rebuild the previous generation's spec if there is one.
 */

export type QueuedRequest = { kind: 'refresh'; force: boolean } | { kind: 'rollback' };

export type AspiredView =
  | { ok: true; key: string }
  | { ok: false; code: string; message: string; waiting: boolean };

export interface PolicyInput {
  closed: boolean;
  /** A build is in flight. */
  building: boolean;
  request: QueuedRequest | null;
  /** Content key of the active generation. */
  activeKey: string | null;
  /** The folders as resolved for this request (null for a rollback: it does not look). */
  aspired: AspiredView | null;
  /** Content key rolled back from: not built again by a plain refresh. */
  pinnedAwayKey: string | null;
  /** Content key of the latest rejected build. */
  lastRejectedKey: string | null;
  /** Content key of the previous good generation (rollback target), if any. */
  previousKey: string | null;
}

export type PolicyAction =
  | { type: 'none' }
  | { type: 'wait' }
  | { type: 'build'; forced: boolean }
  | { type: 'rollback' }
  | { type: 'no-previous' }
  | { type: 'unresolved'; waiting: boolean }
  | { type: 'unchanged'; reason: 'serving' | 'pinned' | 'rejected-before' };

export function nextAction(s: PolicyInput): PolicyAction {
  if (s.closed || !s.request) return { type: 'none' };
  if (s.building) return { type: 'wait' };
  if (s.request.kind === 'rollback') return s.previousKey ? { type: 'rollback' } : { type: 'no-previous' };
  const a = s.aspired;
  if (!a) return { type: 'none' };
  if (!a.ok) return { type: 'unresolved', waiting: a.waiting };
  if (s.request.force) return { type: 'build', forced: true };
  if (a.key === s.activeKey) return { type: 'unchanged', reason: 'serving' };
  if (a.key === s.pinnedAwayKey) return { type: 'unchanged', reason: 'pinned' };
  if (a.key === s.lastRejectedKey) return { type: 'unchanged', reason: 'rejected-before' };
  return { type: 'build', forced: false };
}

/** Queue merge rule: refreshes coalesce into one (a force wins); rollbacks keep their place. */
export function enqueue(queue: QueuedRequest[], req: QueuedRequest): { queue: QueuedRequest[]; mergedInto: number } {
  const last = queue[queue.length - 1];
  if (req.kind === 'refresh' && last?.kind === 'refresh') {
    const merged: QueuedRequest = { kind: 'refresh', force: last.force || req.force };
    return { queue: [...queue.slice(0, -1), merged], mergedInto: queue.length - 1 };
  }
  return { queue: [...queue, req], mergedInto: queue.length };
}
