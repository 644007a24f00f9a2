/**
 * The in-process LangChain.js peer: Express + LangChain's MemoryVectorStore with the same model
 * (HuggingFaceTransformersEmbeddings), one global retriever. The store is read out of the Chroma
 * folder once (a Chroma child on a copy, paged out with the chromadb client, then stopped); on a
 * change, a new MemoryVectorStore is built the same way and the global is swapped.
 *
 *   node dist/bench/memory-peer.js --store <flat chroma folder> --model <model folder> --port N
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { HuggingFaceTransformersEmbeddings } from '@langchain/community/embeddings/huggingface_transformers';
import { Document } from '@langchain/core/documents';
import { MemoryVectorStore } from '@langchain/classic/vectorstores/memory';
import { createSilentLogger } from '../src/observability/logger.js';
import { reloadOnChange, servePeer } from './lib/peer-app.js';
import { ChromaServer } from '../src/store/chroma-server.js';
import { ChromaStore } from '../src/store/chroma-store.js';

const { values } = parseArgs({ options: { store: { type: 'string' }, model: { type: 'string' }, port: { type: 'string', default: '0' } } });
const storeDir = values.store!;
const modelDir = values.model!;
const { env } = await import('@huggingface/transformers');
env.allowRemoteModels = false;
env.localModelPath = dirname(modelDir) + '/';
const embeddings = new HuggingFaceTransformersEmbeddings({ model: basename(modelDir), pretrainedOptions: { local_files_only: true, dtype: 'fp32' } as never });

async function build(): Promise<ReturnType<MemoryVectorStore['asRetriever']>> {
  const dir = await mkdtemp(join(tmpdir(), 'rag-bench-mem-'));
  await cp(storeDir, dir, { recursive: true });
  const server = new ChromaServer({ dataDir: dir, logger: createSilentLogger(), restart: false });
  try {
    await server.start();
    const store = await ChromaStore.open({ url: server.url });
    const vs = new MemoryVectorStore(embeddings);
    for await (const page of store.allRecords(1000, true)) {
      await vs.addVectors(
        page.embeddings!,
        page.ids.map((id, i) => new Document({ id, pageContent: page.documents[i] ?? '', metadata: (page.metadatas[i] ?? {}) as Record<string, unknown> })),
      );
    }
    return vs.asRetriever({ k: 4 });
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

let retriever = await build();
reloadOnChange(storeDir, async () => {
  await new Promise((r) => setTimeout(r, 300));
  retriever = await build(); // the global swap
});

const http = servePeer('memory-peer', Number(values.port), () => retriever);
process.on('SIGTERM', () => http.close(() => process.exit(0)));
