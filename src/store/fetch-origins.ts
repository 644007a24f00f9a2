/**
 * Node's fetch (undici 6, bundled with Node 20) keeps a connection pool for every origin it has
 * fetched from, in its global Agent, and never removes one (undici's agent.js says so: "a tiny
 * memory leak, as dispatchers are never removed from the map"). Every Chroma child this service
 * starts listens on a port of its own, so each swap's loader child left a Pool and its Clients on
 * the event loop's heap for the life of the process (about 3 undici Clients a swap in heap snapshots
 * after 3 and 40 swaps; bench/results/swaps-2026-12-05-s15.md). A Chroma server forgets its child's
 * origin when the child exits (chroma-server.ts).
 *
 * The Agent is found the way undici itself shares it between copies (the global symbol
 * `undici.globalDispatcher.1`); its map of origins has no public accessor, so it is looked up by
 * its symbol's description. If a Node release changes either, this does nothing (the test
 * test/integration/fetch-origins.test.ts then fails).
 */
const GLOBAL_DISPATCHER = Symbol.for('undici.globalDispatcher.1');

interface Closable {
  close(): Promise<void>;
}

/** The global fetch dispatcher's pools by origin, or null when there is none (yet) or it is not undici's Agent. */
export function originPools(): Map<string, Closable> | null {
  const agent = (globalThis as Record<symbol, unknown>)[GLOBAL_DISPATCHER];
  if (!agent || typeof agent !== 'object') return null;
  const key = Object.getOwnPropertySymbols(agent).find((s) => s.description === 'clients');
  const pools = key ? (agent as Record<symbol, unknown>)[key] : undefined;
  return pools instanceof Map ? (pools as Map<string, Closable>) : null;
}

/**
 * Drop fetch's pool for `url`'s origin (the server behind it is gone) and close it: requests still
 * in flight on it finish (a port can be taken again by a new child before the old one's exit is
 * seen), then its connections close. A later fetch to the origin makes a new pool. Returns
 * whether there was one.
 */
export function forgetOrigin(url: string): boolean {
  const pools = originPools();
  if (!pools) return false;
  let origin: string;
  try {
    origin = new URL(url).origin;
  } catch {
    return false;
  }
  const pool = pools.get(origin);
  if (!pool) return false;
  pools.delete(origin);
  void pool.close().catch(() => undefined);
  return true;
}
