import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDocuments } from '../../src/ingest/load-documents.js';
import { publishSharedVersion, rollbackShared } from '../../src/ingest/publish-shared.js';
import { splitDocuments } from '../../src/ingest/split-documents.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { SharedRegistry } from '../../src/store/shared-registry.js';
import { copyModelInto, getJson, logger, postJson, tempDir, testModel, waitFor, writeEditionDocs } from '../helpers/harness.js';
import { alive, chromaPidsUnder, ppidOf, spawnerHostsOf, startRealService, type RealService } from '../helpers/real-service.js';

/**
 * Issue 15 with the real thing: one standalone Chroma server and three replica *processes*
 * (`node dist/src/main.js`) following the shared pointer, each under a retrieve loop.
 *
 * Publishing is sequential: each version waits until all replicas serve it before the next is
 * published. Overlapping publishes would let a replica skip a version (it builds the newest one the
 * pointer names), and the issue asks that every replica serves each version.
 *
 * GC runs in the publisher (publishSharedVersion's replicaTtlMs, the CLI's --replica-ttl-ms /
 * REPLICA_TTL_MS); a replica's own REPLICA_TTL_MS is not used by the replica. Replicas heartbeat on
 * every pointer poll, so POINTER_POLL_MS must stay well below the TTL. keepVersions is 0 here so
 * that only the pointer, its previous version and live replicas' heartbeats protect a version.
 */
const NAME = 'docs';
const TTL_MS = 3_000;
const POLL_MS = 200;
const VERSIONS_UNDER_LOAD = 10;

let tmp: { dir: string; cleanup: () => Promise<void> };
let chroma: ChromaServer;
let registry: SharedRegistry;
const replicas: RealService[] = [];
/** Spawner hosts (src/store/spawner-host.cjs) of each replica, to prove none outlives it. */
const hosts: number[] = [];

async function publish(n: number, replicaTtlMs = TTL_MS) {
  const docs = await writeEditionDocs(tmp.dir, n);
  const { documents } = await loadDocuments(docs);
  const chunks = await splitDocuments(documents, { chunkSize: 300, chunkOverlap: 30 });
  return publishSharedVersion({ url: chroma.url, name: NAME, chunks, model: await testModel(), version: `v${n}`, keepVersions: 0, replicaTtlMs });
}

async function served(r: RealService): Promise<string | null> {
  try {
    return ((await getJson(`${r.url}/readyz`)) as { store?: { version?: string } | null }).store?.version ?? null;
  } catch {
    return null;
  }
}

/** Poll /readyz of every replica until all report the version; ms from `since` to that moment. */
async function converge(on: RealService[], version: string, since: number): Promise<number> {
  await waitFor(async () => (await Promise.all(on.map(served))).every((v) => v === version), 90_000, `replicas on ${version}`);
  return Date.now() - since;
}

const collections = async () => new Set((await registry.versions(NAME)).map((v) => v.version));

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]!;
}

interface Load {
  ok: number;
  failed: string[];
  seen: Set<string>;
  stop: boolean;
  done: Promise<void>;
}

function startLoad(r: RealService): Load {
  const load: Load = { ok: 0, failed: [], seen: new Set(), stop: false, done: Promise.resolve() };
  load.done = (async () => {
    while (!load.stop) {
      try {
        const res = await postJson(`${r.url}/v1/retrieve`, { question: 'lighthouse keeper edition', k: 2, mode: 'dense' });
        if (res.status !== 200) load.failed.push(`${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
        else {
          load.ok++;
          load.seen.add(res.body.generation.storeVersion);
        }
      } catch (err) {
        load.failed.push(`network: ${(err as Error).message}`);
      }
    }
  })();
  return load;
}

beforeAll(async () => {
  tmp = await tempDir('rag-t-shared-proc-');
  await copyModelInto(join(tmp.dir, 'models'));
  chroma = new ChromaServer({ dataDir: join(tmp.dir, 'chroma'), logger, restart: false });
  await chroma.start();
  registry = await SharedRegistry.open(chroma.url);
  await publish(1);
  const started = await Promise.allSettled(
    [0, 1, 2].map((i) =>
      startRealService(
        {
          MODELS_DIR: join(tmp.dir, 'models'),
          VECTORSTORE_DIR: join(tmp.dir, `vectorstore-r${i}`),
          RUNTIME_DIR: join(tmp.dir, `runtime-r${i}`),
          CHROMA_URL: chroma.url,
          STORE_NAME: NAME,
          POINTER_POLL_MS: String(POLL_MS),
          REPLICA_TTL_MS: String(TTL_MS),
          REPLICA_ID: `r${i}`,
          WATCH: 'false',
        },
        { timeoutMs: 90_000 },
      ),
    ),
  );
  for (const s of started) if (s.status === 'fulfilled') replicas.push(s.value);
  const failed = started.find((s) => s.status === 'rejected');
  if (failed) throw (failed as PromiseRejectedResult).reason;
  for (const r of replicas) hosts.push(...(await spawnerHostsOf(r.child.pid!)));
}, 180_000);

afterAll(async () => {
  for (const r of replicas) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGTERM');
      const t = setTimeout(() => r.child.kill('SIGKILL'), 15_000);
      await r.exited;
      clearTimeout(t);
    }
  }
  await chroma?.stop();
  for (const pid of await chromaPidsUnder(tmp.dir)) process.kill(pid, 'SIGKILL');
  await tmp?.cleanup();
}, 60_000);

describe('three replica processes on one shared Chroma', () => {
  it('10 versions under load: 0 failed requests, every replica serves each; a replica SIGKILLed mid-swap stops protecting its version after the TTL; rollback converges', async () => {
    const [r0, r1, r2] = replicas as [RealService, RealService, RealService];
    for (const r of replicas) expect(await served(r)).toBe('v1');
    expect((await registry.replicas(NAME)).map((b) => b.replica).sort()).toEqual(['r0', 'r1', 'r2']);

    const loads = replicas.map(startLoad);
    const [l0, l1, l2] = loads as [Load, Load, Load];
    const fromPublish: number[] = [];
    const fromFlip: number[] = [];
    let left: Set<string>;
    try {
      for (let n = 2; n < 2 + VERSIONS_UNDER_LOAD; n++) {
        const r = await publish(n);
        const published = Date.now();
        fromPublish.push(await converge(replicas, `v${n}`, published));
        fromFlip.push(Date.now() - r.pointer.updatedAt);
        // Each replica answers from the new version's own texts.
        for (const rep of replicas) {
          const res = await postJson(`${rep.url}/v1/retrieve`, { question: `edition ${n} lighthouse keeper`, k: 1, mode: 'dense' });
          expect(res.status).toBe(200);
          expect(res.body.generation.storeVersion).toBe(`v${n}`);
          expect(res.body.sources[0].text).toContain(`edition ${n}`);
        }
        // Nothing a replica serves (v{n}) nor its rollback target was collected. Older ones go (keep 0):
        // v{n-2} may survive one more publish if a replica's heartbeat still named it, v{n-3} cannot.
        left = await collections();
        expect(left.has(`v${n}`) && left.has(`v${n - 1}`)).toBe(true);
        if (n >= 4) expect(left.has(`v${n - 3}`)).toBe(false);
      }
      const last = 1 + VERSIONS_UNDER_LOAD; // v11
      expect(l2.failed).toEqual([]);

      // SIGKILL r2 in the middle of its swap to the next version: its last heartbeat names `last`.
      l2.stop = true;
      await l2.done;
      const next = last + 1; // v12
      await publish(next);
      let phaseAtKill: string | null = null;
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
        const st = await getJson(`${r2.url}/admin/status`).catch(() => null);
        if (st?.building || st?.active?.store?.version === `v${next}`) {
          phaseAtKill = st.building ? `building (${st.building.phase})` : 'already swapped';
          break;
        }
        await new Promise((res) => setTimeout(res, 5));
      }
      r2.child.kill('SIGKILL');
      await r2.exited;
      const deadBeat = (await registry.replicas(NAME)).find((b) => b.replica === 'r2');
      // The heartbeat reports what the replica serves; it was still swapping, so it names the old version.
      expect(deadBeat?.version).toBe(`v${last}`);
      await converge([r0, r1], `v${next}`, Date.now());

      // Within the TTL the dead replica's heartbeat still protects v11 (no longer pointer nor previous).
      const within = await publish(next + 1, 10 * 60_000); // v13
      expect(within.deleted).not.toContain(`${NAME}--v${last}`);
      expect((await collections()).has(`v${last}`)).toBe(true);
      await converge([r0, r1], `v${next + 1}`, Date.now());

      // Past the TTL the dead heartbeat no longer counts: the next publish collects v11.
      await waitFor(async () => {
        const b = (await registry.replicas(NAME)).find((x) => x.replica === 'r2');
        return b !== undefined && Date.now() - b.at > TTL_MS;
      }, 30_000, 'the dead replica heartbeat to age past the TTL');
      const after = await publish(next + 2, TTL_MS); // v14
      expect(after.deleted).toContain(`${NAME}--v${last}`);
      left = await collections();
      expect(left.has(`v${last}`)).toBe(false);
      expect(left.has(`v${next + 2}`) && left.has(`v${next + 1}`)).toBe(true);
      // The live replicas' versions were never collected (they serve v13, the previous of v14).
      for (const rep of [r0, r1]) expect(left.has((await served(rep))!)).toBe(true);
      await converge([r0, r1], `v${next + 2}`, Date.now());

      // Rollback (one pointer write back to v13) converges on the remaining replicas.
      const rolledAt = Date.now();
      const pointer = await rollbackShared(chroma.url, NAME);
      expect(pointer).toMatchObject({ version: `v${next + 1}`, previous: `v${next + 2}` });
      const rollbackMs = await converge([r0, r1], `v${next + 1}`, rolledAt);
      for (const rep of [r0, r1]) {
        const res = await postJson(`${rep.url}/v1/retrieve`, { question: `edition ${next + 1} lighthouse keeper`, k: 1, mode: 'dense' });
        expect(res.body.generation.storeVersion).toBe(`v${next + 1}`);
      }

      console.log(
        `shared replicas (processes): convergence publish-returned -> all 3 on /readyz ms ${JSON.stringify(fromPublish)}; p50 ${percentile(fromPublish, 0.5)}, p90 ${percentile(fromPublish, 0.9)}; ` +
          `from pointer flip p50 ${percentile(fromFlip, 0.5)}, p90 ${percentile(fromFlip, 0.9)}; rollback -> 2 live replicas ${rollbackMs} ms; ` +
          `r2 killed at ${phaseAtKill ?? 'no build seen within 30 s'}, GC after TTL deleted ${JSON.stringify(after.deleted)}; ` +
          `requests ok/failed r0 ${l0.ok}/${l0.failed.length}, r1 ${l1.ok}/${l1.failed.length}, r2 (until killed) ${l2.ok}/${l2.failed.length}`,
      );
    } finally {
      for (const l of loads) l.stop = true;
      await Promise.all(loads.map((l) => l.done));
    }
    for (const l of loads) expect(l.failed).toEqual([]);
    for (const l of loads) expect(l.ok).toBeGreaterThan(0);
    // The retrieve loop itself saw every version on the live replicas (each served one for a while).
    for (const l of [l0, l1]) for (let n = 2; n <= 1 + VERSIONS_UNDER_LOAD; n++) expect(l.seen.has(`v${n}`)).toBe(true);
  }, 240_000);

  it('stopping the live replicas leaves no process behind (the killed one took its spawner host with it)', async () => {
    for (const r of replicas) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        r.child.kill('SIGTERM');
        expect((await r.exited).code).toBe(0);
      }
    }
    await waitFor(() => hosts.every((p) => !alive(p)), 10_000, 'the spawner hosts to exit');
    await chroma.stop();
    await waitFor(async () => (await chromaPidsUnder(tmp.dir)).length === 0, 10_000, 'no Chroma server left');
    for (const r of replicas) expect(alive(r.child.pid!)).toBe(false);
  }, 60_000);
});
