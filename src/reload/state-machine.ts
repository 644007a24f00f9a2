import { RagError } from '../errors.js';

/**
 * Explicit state machines with guarded transitions (TF Serving's LoaderHarness states, cut to
 * what we use). An illegal transition is a bug: it throws RAG_RELOAD_ILLEGAL_TRANSITION.
 */

/** The manager: one build at a time, then closing for good. */
export const ManagerStates = ['idle', 'resolving', 'building', 'swapping', 'closing', 'closed'] as const;
export type ManagerState = (typeof ManagerStates)[number];

const managerTransitions: Record<ManagerState, readonly ManagerState[]> = {
  idle: ['resolving', 'building', 'closing'],
  resolving: ['idle', 'building', 'closing'],
  building: ['swapping', 'idle', 'closing'],
  swapping: ['idle', 'closing'],
  closing: ['closed'],
  closed: [],
};

/** One generation's life: new -> loading -> ready (standby) -> serving -> quiescing -> disabled; or error. */
export const HarnessStates = ['new', 'loading', 'ready', 'serving', 'quiescing', 'disabled', 'error'] as const;
export type HarnessState = (typeof HarnessStates)[number];

const harnessTransitions: Record<HarnessState, readonly HarnessState[]> = {
  new: ['loading'],
  loading: ['ready', 'error'],
  ready: ['serving', 'disabled'],
  serving: ['quiescing'],
  quiescing: ['disabled'],
  error: ['disabled'],
  disabled: [],
};

export class StateMachine<S extends string> {
  private value: S;
  private readonly log: Array<{ from: S; to: S; at: number }> = [];

  constructor(
    private readonly name: string,
    initial: S,
    private readonly table: Record<S, readonly S[]>,
  ) {
    this.value = initial;
  }

  get state(): S {
    return this.value;
  }

  can(to: S): boolean {
    return this.table[this.value].includes(to);
  }

  /** Move to `to`, or throw if the table does not allow it from the current state. */
  transition(to: S): void {
    if (!this.can(to)) {
      throw new RagError('RAG_RELOAD_ILLEGAL_TRANSITION', `${this.name}: illegal transition ${this.value} -> ${to}`, {
        details: { from: this.value, to },
      });
    }
    this.log.push({ from: this.value, to, at: Date.now() });
    if (this.log.length > 50) this.log.shift();
    this.value = to;
  }

  /** Assert the machine is in one of these states (a guard before acting). */
  expect(...states: S[]): void {
    if (!states.includes(this.value)) {
      throw new RagError('RAG_RELOAD_ILLEGAL_TRANSITION', `${this.name}: expected ${states.join(' or ')}, but it is ${this.value}`);
    }
  }
}

export function managerMachine(): StateMachine<ManagerState> {
  return new StateMachine<ManagerState>('reload manager', 'idle', managerTransitions);
}

export function harnessMachine(id: string): StateMachine<HarnessState> {
  return new StateMachine<HarnessState>(`generation ${id}`, 'new', harnessTransitions);
}
