/**
 * What `run` resolves with, and how many times the event loop ran a check-phase callback meanwhile
 * (setImmediate, re-queued until it settles): work that yields to the event loop lets it run.
 */
export async function ticksDuring<T>(run: () => Promise<T>): Promise<{ value: T; ticks: number }> {
  let ticks = 0;
  let done = false;
  const tick = () => {
    ticks++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  try {
    return { value: await run(), ticks };
  } finally {
    done = true;
  }
}
