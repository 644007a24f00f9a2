import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { forgetOrigin, originPools } from '../../src/store/fetch-origins.js';

/**
 * Node 20's fetch keeps a pool per origin forever; every Chroma child has an origin of its own
 * (fetch-origins.ts). These run on Node's real fetch: if a Node release changes how its dispatcher
 * keeps pools, the first test fails and fetch-origins.ts needs a look.
 */
const servers: Server[] = [];
afterAll(() => {
  for (const s of servers) s.close();
});

async function httpServer(): Promise<string> {
  const s = createServer((_req, res) => res.end('ok'));
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const addr = s.address();
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return `http://127.0.0.1:${addr.port}`;
}

describe("fetch's pools per origin", () => {
  it('a fetched origin has a pool in the global dispatcher; forgetOrigin drops it, and a later fetch to it still works', async () => {
    const url = await httpServer();
    expect(await (await fetch(`${url}/a`)).text()).toBe('ok');
    const pools = originPools();
    expect(pools).not.toBeNull();
    expect(pools!.has(url)).toBe(true);
    expect(forgetOrigin(`${url}/any/path?q=1`)).toBe(true);
    expect(pools!.has(url)).toBe(false);
    expect(forgetOrigin(url)).toBe(false);
    expect(forgetOrigin('not a url')).toBe(false);
    expect(await (await fetch(`${url}/b`)).text()).toBe('ok');
    expect(forgetOrigin(url)).toBe(true);
  });

  it('a Chroma child queried from this thread leaves no pool behind once stopped, start after start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rag-t-origins-'));
    try {
      const before = originPools()?.size ?? 0;
      for (let i = 0; i < 3; i++) {
        const server = new ChromaServer({ dataDir: join(dir, `s${i}`), logger: createSilentLogger() });
        await server.start();
        await ChromaStore.client(server.url).heartbeat();
        expect(originPools()?.has(server.url)).toBe(true);
        await server.stop();
        expect(originPools()?.has(server.url) ?? false).toBe(false);
      }
      expect(originPools()?.size ?? 0).toBeLessThanOrEqual(before);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
