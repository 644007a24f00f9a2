import type { ErrorCode } from '../errors.js';
import type { GenerationInfo } from './generation.js';

export const ReloadEvents = {
  started: 'reload.started',
  accepted: 'reload.accepted',
  rejected: 'reload.rejected',
  /** Kept for subscribers of the old stream; the policy never supersedes a started build now. */
  superseded: 'reload.superseded',
  unchanged: 'reload.unchanged',
  waiting: 'reload.waiting',
  rolledBack: 'reload.rolled_back',
  retired: 'generation.retired',
  chromaRestarted: 'chroma.restarted',
  chromaUnhealthy: 'chroma.unhealthy',
  watchProblem: 'watch.problem',
} as const;
export type ReloadEventName = (typeof ReloadEvents)[keyof typeof ReloadEvents];

export type ReloadOutcome = 'accepted' | 'rejected' | 'superseded' | 'unchanged' | 'rolled_back' | 'waiting';

export interface ReloadAttempt {
  id: number;
  trigger: string;
  startedAt: string;
  durationMs: number;
  outcome: ReloadOutcome;
  /** The generation serving after this attempt. */
  generation: string | null;
  storeVersion: string | null;
  model: string | null;
  /** Content key of what was built (or found unchanged). */
  key?: string | null;
  error: { code: ErrorCode; message: string } | null;
  /** Where the build time went (ms). */
  phases?: Record<string, number>;
  /** Why nothing was built, for unchanged outcomes. */
  reason?: string;
}

export interface ReloadEvent {
  type: ReloadEventName;
  at: string;
  attempt?: ReloadAttempt;
  generation?: GenerationInfo;
  detail?: Record<string, unknown>;
}

/**
 * The last RELOAD_HISTORY attempts, newest first, plus the two pointers an operator asks for:
 * the latest failed attempt (cleared by a later success) and the latest success.
 */
export class ReloadHistory {
  private readonly items: ReloadAttempt[] = [];
  private counter = 0;
  lastError: ReloadAttempt | null = null;
  lastSuccess: ReloadAttempt | null = null;

  constructor(private readonly max: number) {}

  get lastId(): number {
    return this.counter;
  }

  add(attempt: Omit<ReloadAttempt, 'id'>): ReloadAttempt {
    const full: ReloadAttempt = { id: ++this.counter, ...attempt };
    this.items.unshift(full);
    this.items.length = Math.min(this.items.length, this.max);
    if (full.outcome === 'rejected') this.lastError = full;
    if (full.outcome === 'accepted' || full.outcome === 'rolled_back') {
      this.lastSuccess = full;
      this.lastError = null;
    }
    return full;
  }

  /** The folders are back to what is served: an earlier failure no longer describes them. */
  clearError(): void {
    this.lastError = null;
  }

  get latest(): ReloadAttempt | null {
    return this.items[0] ?? null;
  }

  list(): ReloadAttempt[] {
    return [...this.items];
  }
}
