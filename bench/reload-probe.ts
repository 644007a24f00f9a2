/**
 * `npm run reload-probe [-- --chunks 5000 --every 2000 --duration 60000 --load 8]`: the reload
 * contract's figures on the real process (node dist/src/main.js, its own event loop):
 *  A. a version published every `--every` ms for `--duration` ms while `--load` connections
 *     query /v1/retrieve: failed requests, versions published / built / served, and
 *     write-finished (CURRENT renamed) -> serving p50/p90;
 *  B. SIGKILL of the service: how long until no Chroma child is left (5 runs);
 *  C. SIGSTOP of the Chroma child: how long requests take to end, and with what.
 * Writes bench/results/<date>-reload-probe.{json,md}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { loadEmbeddingModel } from '../src/embeddings/model-loader.js';
import { publishStoreVersion } from '../src/ingest/publish.js';
import { createSilentLogger } from '../src/observability/logger.js';
import { readServerSentEvents } from './lib/sse.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const { values } = parseArgs({
  options: {
    chunks: { type: 'string', default: '5000' },
    every: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '60000' },
    load: { type: 'string', default: '8' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results') },
  },
});

function pct(xs: number[], p: number): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function startService(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'src', 'main.js')], { env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise((r) => child.once('exit', r));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('service did not start')), 120_000);
    child.stdout!.on('data', (b: Buffer) => {
      const m = /"url":"(http:\/\/[^"]+)"[^\n]*"msg":"listening"/.exec(b.toString());
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.stderr!.resume();
  });
  return { child, url, exited };
}

async function chromaPidsUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('chroma-launcher.cjs') && cmd.includes(`${dir}/`)) pids.push(Number(name));
  }
  return pids;
}

/** Running (a zombie waiting for the container's init to reap it counts as gone: it runs nothing). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function main() {
  const work = await mkdtemp(join(tmpdir(), 'rag-reloadprobe-'));
  const logger = createSilentLogger();
  const results: Record<string, unknown> = { date: new Date().toISOString(), args: values };
  try {
    const model = await loadEmbeddingModel({ dir: join(ROOT, 'models', 'glove-sif-100d') });
    const words = 'lighthouse lens ship harbor bread yeast volcano lava orbit satellite tea leaf river mountain city train music piano garden rose'.split(' ');
    const chunks = Array.from({ length: Number(values.chunks) }, (_, i) => ({
      id: `c${i}`,
      text: `${words[i % 20]} ${words[(i * 7) % 20]} ${words[(i * 13) % 20]} record ${i} `.repeat(6),
      metadata: { source: `s${i % 10}.md`, chunk: i },
    }));
    const built = await publishStoreVersion({ outDir: join(work, 'staging'), chunks, model, logger, version: 'v0000', activate: false });
    await model.dispose();
    const store = join(work, 'vs');
    await mkdir(store);
    await cp(built.dir, join(store, 'v0000'), { recursive: true });
    await writeFile(join(store, 'CURRENT'), 'v0000\n');
    const env = { MODELS_DIR: join(ROOT, 'models'), VECTORSTORE_DIR: store, RUNTIME_DIR: join(work, 'rt'), AUDIT_LOG_DIR: 'off', MAX_CONCURRENT: '10000', WATCH_DEBOUNCE_MS: '50', WATCH_STABILITY_MS: '150' };

    // ---- A. publish every N ms under load ----
    {
      const svc = await startService(env);
      const accepted = new Map<string, number>();
      const built: string[] = [];
      const rejected: string[] = [];
      const sse = new AbortController();
      readServerSentEvents(`${svc.url}/admin/events`, (type, data) => {
        const a = (data as { attempt?: { storeVersion?: string; error?: { code: string } } }).attempt;
        if (type === 'reload.accepted' && a?.storeVersion) {
          accepted.set(a.storeVersion, Date.now());
          built.push(a.storeVersion);
        }
        if (type === 'reload.rejected') rejected.push(`${a?.storeVersion}: ${a?.error?.code}`);
      }, sse.signal);
      const load = autocannon({
        url: `${svc.url}/v1/retrieve`,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ question: 'lighthouse lens', k: 4 }),
        connections: Number(values.load),
        duration: Math.ceil(Number(values.duration) / 1000) + 15,
      });
      const published: Array<{ version: string; at: number }> = [];
      const t0 = Date.now();
      let i = 0;
      while (Date.now() - t0 < Number(values.duration)) {
        const v = `v${String(++i).padStart(4, '0')}`;
        const tick = Date.now();
        await cp(join(work, 'staging', 'v0000'), join(store, v), { recursive: true });
        await writeFile(join(store, 'CURRENT.tmp'), `${v}\n`);
        await rename(join(store, 'CURRENT.tmp'), join(store, 'CURRENT'));
        published.push({ version: v, at: Date.now() });
        // Keep the last 6 versions on disk, like `ingest --keep`.
        const old = `v${String(i - 6).padStart(4, '0')}`;
        if (i > 6) await rm(join(store, old), { recursive: true, force: true });
        await new Promise((r) => setTimeout(r, Math.max(0, Number(values.every) - (Date.now() - tick))));
      }
      const last = published[published.length - 1]!;
      const deadline = Date.now() + 60_000;
      while (!accepted.has(last.version) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const lat = published.filter((p) => accepted.has(p.version)).map((p) => accepted.get(p.version)! - p.at);
      // Each publish is served, or overtaken by a newer one before its build started: then the
      // newer version's serving time is when its content was first served.
      const firstServedAfter = published.map((p) => {
        const later = [...accepted.entries()].filter(([v]) => v >= p.version).map(([, at]) => at);
        return later.length ? Math.min(...later) - p.at : null;
      }).filter((x): x is number => x !== null);
      const lr = await new Promise<autocannon.Result>((resolve) => {
        const inst = load as unknown as { stop(): void; on(e: 'done', f: (r: autocannon.Result) => void): void };
        inst.on('done', resolve);
        inst.stop();
      });
      sse.abort();
      const status = (await (await fetch(`${svc.url}/admin/status`)).json()) as { history: Array<{ outcome: string; storeVersion: string; durationMs: number }> };
      const buildMs = status.history.filter((h) => h.outcome === 'accepted').map((h) => h.durationMs);
      svc.child.kill('SIGTERM');
      await svc.exited;
      results.publish = {
        published: published.length,
        built: built.length,
        served: accepted.size,
        rejected,
        neverBuilt: published.length - accepted.size - rejected.length,
        everyCompletedBuildServed: built.length === accepted.size,
        newestServed: accepted.has(last.version),
        writeFinishedToServingMs: { p50: pct(lat, 50), p90: pct(lat, 90), max: pct(lat, 100), n: lat.length },
        writeFinishedToContentServedMs: { p50: pct(firstServedAfter, 50), p90: pct(firstServedAfter, 90), max: pct(firstServedAfter, 100) },
        buildMs: { p50: pct(buildMs, 50), p90: pct(buildMs, 90) },
        requests: { total: lr.requests.total, non2xx: lr.non2xx, errors: lr.errors, timeouts: lr.timeouts, p50Ms: lr.latency.p50, p99Ms: lr.latency.p99 },
      };
      console.log('publish every', values.every, 'ms:', JSON.stringify(results.publish));
    }

    // ---- B. SIGKILL of the service: time until no Chroma child is left ----
    {
      const times: number[] = [];
      for (let r = 0; r < 5; r++) {
        await writeFile(join(store, 'CURRENT'), `${(await readdir(store)).filter((n) => n.startsWith('v')).sort().pop()}\n`);
        const svc = await startService({ ...env, WATCH: 'false', RUNTIME_DIR: join(work, `rt-kill-${r}`) });
        const pids = await chromaPidsUnder(join(work, `rt-kill-${r}`));
        const t = performance.now();
        svc.child.kill('SIGKILL');
        while (pids.some(alive) && performance.now() - t < 10_000) await new Promise((res) => setTimeout(res, 5));
        times.push(Math.round(performance.now() - t));
      }
      results.sigkill = { childGoneMs: times, max: Math.max(...times), leftAfter10s: times.filter((t) => t >= 10_000).length };
      console.log('SIGKILL -> no child (ms):', times.join(', '));
    }

    // ---- C. SIGSTOP of the Chroma child: how requests end ----
    {
      const queryTimeout = 2000;
      const svc = await startService({ ...env, WATCH: 'false', RUNTIME_DIR: join(work, 'rt-stop'), STORE_QUERY_TIMEOUT_MS: String(queryTimeout), CHROMA_HEARTBEAT_MS: '500', CHROMA_HEARTBEAT_MISSES: '3' });
      const [pid] = await chromaPidsUnder(join(work, 'rt-stop'));
      process.kill(pid!, 'SIGSTOP');
      const t0 = performance.now();
      const reqs: Array<{ status: number; code: string | undefined; ms: number }> = [];
      while (performance.now() - t0 < 8000) {
        const ts = performance.now();
        const res = await fetch(`${svc.url}/v1/retrieve`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ question: 'lighthouse', k: 2 }) });
        const body = (await res.json()) as { error?: { code: string } };
        reqs.push({ status: res.status, code: body.error?.code, ms: Math.round(performance.now() - ts) });
        await new Promise((r) => setTimeout(r, 100));
      }
      const during = reqs.filter((r) => r.status !== 200);
      results.sigstop = {
        queryTimeoutMs: queryTimeout,
        requests: reqs.length,
        failedWith: [...new Set(during.map((r) => `${r.status} ${r.code}`))],
        maxRequestMs: Math.max(...reqs.map((r) => r.ms)),
        childKilled: !alive(pid!),
        okAfterRestart: reqs.slice(-3).every((r) => r.status === 200),
      };
      console.log('SIGSTOP:', JSON.stringify(results.sigstop));
      svc.child.kill('SIGTERM');
      await svc.exited;
    }
    const day = new Date().toISOString().slice(0, 10);
    await mkdir(values.out!, { recursive: true });
    await writeFile(join(values.out!, `${day}-reload-probe.json`), JSON.stringify(results, null, 2) + '\n');
    console.log(`wrote ${join(values.out!, `${day}-reload-probe.json`)}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
