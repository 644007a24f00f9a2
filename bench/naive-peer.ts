/**
 * The naive peer: what the common tutorial does, kept faithful and small, so the benchmark shows
 * what the generation design buys. Express + LangChain.js; one global retriever over a Chroma
 * server running on the ./vectorstore folder itself; a chokidar watcher that, when files change,
 * restarts Chroma on the same folder in place and reassigns the global retriever. No snapshot,
 * no validation, no draining, no batching: requests during a reload fail or see mixed files.
 *
 * With --fair it reloads the way the blogged design does: copy the changed folder, start a new
 * Chroma on the copy and build the new retriever first, then swap the global, then stop the old
 * server (so requests are never sent to a stopped server).
 *
 *   node dist/bench/naive-peer.js --store <flat chroma folder> --model <model folder> --port N [--fair]
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { basename, dirname, join } from 'node:path';
import { HuggingFaceTransformersEmbeddings } from '@langchain/community/embeddings/huggingface_transformers';
import { Chroma } from '@langchain/community/vectorstores/chroma';
import { ChromaClient } from 'chromadb';
import { createSilentLogger } from '../src/observability/logger.js';
import { reloadOnChange, servePeer } from './lib/peer-app.js';
import { ChromaServer } from '../src/store/chroma-server.js';

const { values } = parseArgs({ options: { store: { type: 'string' }, model: { type: 'string' }, port: { type: 'string', default: '0' }, collection: { type: 'string', default: 'docs' }, fair: { type: 'boolean', default: false } } });
const storeDir = values.store!;
const modelDir = values.model!;

const { env } = await import('@huggingface/transformers');
env.allowRemoteModels = false;
env.localModelPath = dirname(modelDir) + '/';
const embeddings = new HuggingFaceTransformersEmbeddings({ model: basename(modelDir), pretrainedOptions: { local_files_only: true, dtype: 'fp32' } as never });

let server: ChromaServer;
let retriever: ReturnType<Chroma['asRetriever']>;

async function open(): Promise<void> {
  server = new ChromaServer({ dataDir: storeDir, logger: createSilentLogger(), restart: false });
  await server.start();
  const u = new URL(server.url);
  const vectorStore = new Chroma(embeddings, { index: new ChromaClient({ host: u.hostname, port: Number(u.port) }), collectionName: values.collection });
  retriever = vectorStore.asRetriever({ k: 4 });
}

/** The fair reload: build beside the serving one, swap the global, then stop the old server. */
let snapshot: string | null = null;
async function openFair(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rag-bench-fair-'));
  await cp(storeDir, dir, { recursive: true });
  const next = new ChromaServer({ dataDir: dir, logger: createSilentLogger(), restart: false });
  await next.start();
  const u = new URL(next.url);
  const nextRetriever = new Chroma(embeddings, { index: new ChromaClient({ host: u.hostname, port: Number(u.port) }), collectionName: values.collection }).asRetriever({ k: 4 });
  const old = server as ChromaServer | undefined;
  const oldSnapshot = snapshot;
  server = next;
  retriever = nextRetriever;
  snapshot = dir;
  if (old) {
    await new Promise((r) => setTimeout(r, 1000)); // let requests in flight on the old server finish
    await old.stop();
    if (oldSnapshot) await rm(oldSnapshot, { recursive: true, force: true });
  }
}

if (values.fair) await openFair();
else await open();
// The tutorial's hot reload: on any change, reopen the store in place and swap the global.
reloadOnChange(storeDir, async () => {
  if (values.fair) {
    await new Promise((r) => setTimeout(r, 300)); // let the copy finish
    await openFair();
  } else {
    await server.stop();
    await open();
  }
});

const http = servePeer('naive-peer', Number(values.port), () => retriever);
const stop = async () => {
  http.close();
  await server.stop();
  if (snapshot) await rm(snapshot, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
