/**
 * `npm run soak [-- --minutes 30 --swap-every 60]`: a long run (not in CI) with a store swap every
 * minute under steady load; reports RSS and errors over time to bench/results/soak-<date>.{json,md}.
 */
import { cp, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadEmbeddingModel } from '../src/embeddings/model-loader.js';
import { loadDocuments } from '../src/ingest/load-documents.js';
import { splitDocuments } from '../src/ingest/split-documents.js';
import { publishStoreVersion } from '../src/ingest/publish.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { SERVICE_BASE_ENV } from './lib/fixtures.js';
import { runLoad } from './lib/load.js';
import { freePort, startNode, treeRssMiB } from './lib/proc.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({ options: { minutes: { type: 'string', default: '30' }, 'swap-every': { type: 'string', default: '60' }, out: { type: 'string', default: join(ROOT, 'bench', 'results') } } });
const minutes = Number(values.minutes);
const swapEvery = Number(values['swap-every']) * 1000;

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'rag-soak-'));
  await mkdir(join(work, 'models'));
  await cp(join(ROOT, 'models', 'glove-sif-100d'), join(work, 'models', 'glove-sif-100d'), { recursive: true });
  const model = await loadEmbeddingModel({ dir: join(work, 'models', 'glove-sif-100d') });
  const { documents } = await loadDocuments(join(ROOT, 'corpus', 'sample'));
  const chunks = await splitDocuments(documents, { chunkSize: 400, chunkOverlap: 60 });
  const A = await publishStoreVersion({ outDir: join(work, 'staging'), chunks, model, logger: createSilentLogger(), version: 'a', activate: false });
  await model.dispose();
  const store = join(work, 'vectorstore');
  await mkdir(store);
  await cp(A.dir, join(store, 'v0'), { recursive: true });
  await writeFile(join(store, 'CURRENT'), 'v0\n');
  const port = await freePort();
  const svc = await startNode(join(ROOT, 'dist', 'src', 'main.js'), [], { ...SERVICE_BASE_ENV, PORT: String(port), LOG_LEVEL: 'info', MODELS_DIR: join(work, 'models'), VECTORSTORE_DIR: store, RUNTIME_DIR: join(work, 'rt'), AUDIT_LOG_DIR: join(work, 'audit') }, /"msg":"listening"/);
  await new Promise((r) => setTimeout(r, 1000));
  const url = `http://127.0.0.1:${port}`;
  const samples: Array<{ minute: number; rssMiB: number; requests: number; errors: number; non2xx: number; p99: number; version: number }> = [];
  const t0 = Date.now();
  let version = 0;
  let lastSwap = Date.now();
  while (Date.now() - t0 < minutes * 60_000) {
    const r = await runLoad({ url, route: '/v1/retrieve', body: { question: 'how do retries back off', k: 4 }, connections: 4, durationS: 10 });
    if (Date.now() - lastSwap >= swapEvery) {
      const prev = version++;
      await cp(A.dir, join(store, `v${version}`), { recursive: true });
      await writeFile(join(store, 'CURRENT.tmp'), `v${version}\n`);
      await rename(join(store, 'CURRENT.tmp'), join(store, 'CURRENT'));
      lastSwap = Date.now();
      setTimeout(() => void rm(join(store, `v${prev}`), { recursive: true, force: true }), 20_000);
    }
    const s = { minute: Math.round((Date.now() - t0) / 6000) / 10, rssMiB: treeRssMiB(svc.child.pid!), requests: r.requests, errors: r.errors, non2xx: r.non2xx, p99: r.p99, version };
    samples.push(s);
    console.log(JSON.stringify(s));
  }
  const code = await svc.stop();
  await rm(work, { recursive: true, force: true });
  const stamp = new Date().toISOString().slice(0, 10);
  await mkdir(values.out!, { recursive: true });
  // RSS low points: the minimum of each 5-minute window (after garbage the heap settles back to it),
  // and their least-squares slope: a leak shows as a rising floor, not as peaks.
  const lows: Array<{ minute: number; rssMiB: number }> = [];
  for (let w = 0; w < minutes; w += 5) {
    const inWindow = samples.filter((x) => x.minute >= w && x.minute < w + 5);
    if (inWindow.length) lows.push(inWindow.reduce((a, b) => (b.rssMiB < a.rssMiB ? b : a)));
  }
  const n = lows.length;
  const mx = lows.reduce((a, l) => a + l.minute, 0) / Math.max(1, n);
  const my = lows.reduce((a, l) => a + l.rssMiB, 0) / Math.max(1, n);
  const slopePerMin = n > 1 ? lows.reduce((a, l) => a + (l.minute - mx) * (l.rssMiB - my), 0) / lows.reduce((a, l) => a + (l.minute - mx) ** 2, 0) : 0;
  const totals = samples.reduce((a, x) => ({ requests: a.requests + x.requests, errors: a.errors + x.errors, non2xx: a.non2xx + x.non2xx }), { requests: 0, errors: 0, non2xx: 0 });
  await writeFile(join(values.out!, `soak-${stamp}.json`), JSON.stringify({ minutes, swapEverySeconds: swapEvery / 1000, exitCode: code, totals, swaps: version, lows, lowSlopeMiBPerHour: Math.round(slopePerMin * 60 * 10) / 10, samples }, null, 1));
  const md = [`# Soak (${minutes} min, a swap every ${swapEvery / 1000} s, /v1/retrieve at c=4)`, '', `Produced by \`npm run soak -- --minutes ${minutes}\`. Exit code ${code}. ${totals.requests} requests, ${totals.errors} errors, ${totals.non2xx} non-2xx, ${version} swaps.`, '', `RSS low points (minimum of each 5-minute window): ${lows.map((l) => `${l.rssMiB} MiB at ${l.minute} min`).join(', ')}; least-squares trend ${Math.round(slopePerMin * 60 * 10) / 10} MiB/hour.`, '', '| minute | RSS MiB | requests | errors | non-2xx | p99 ms | store version |', '| --- | --- | --- | --- | --- | --- | --- |', ...samples.map((s) => `| ${s.minute} | ${s.rssMiB} | ${s.requests} | ${s.errors} | ${s.non2xx} | ${s.p99} | v${s.version} |`)].join('\n');
  await writeFile(join(values.out!, `soak-${stamp}.md`), md + '\n');
  console.log(md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
