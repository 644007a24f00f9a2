// CHROMA_URL=http://127.0.0.1:8000 node examples/langchain-chroma.mjs "question"
// LangChain.js on a store written by `npm run ingest`, served by any Chroma server (`chroma run --path
// <a copy of vectorstore/<version>>`): the collection is LangChain's default name, `langchain`.
import { HuggingFaceTransformersEmbeddings } from '@langchain/community/embeddings/huggingface_transformers';
import { Chroma } from '@langchain/community/vectorstores/chroma';
import { env } from '@huggingface/transformers';
import { ChromaClient } from 'chromadb';

env.allowRemoteModels = false;
env.localModelPath = new URL('../models/', import.meta.url).pathname; // the model the store was built with
const embeddings = new HuggingFaceTransformersEmbeddings({ model: 'glove-sif-100d', pretrainedOptions: { local_files_only: true, dtype: 'fp32' } });
const url = new URL(process.env.CHROMA_URL ?? 'http://127.0.0.1:8000');
const index = new ChromaClient({ host: url.hostname, port: Number(url.port), ssl: url.protocol === 'https:' });
const store = new Chroma(embeddings, { index, collectionName: 'langchain' });
for (const [doc, distance] of await store.similaritySearchWithScore(process.argv[2] ?? 'How do retries back off?', 3)) {
  console.log(doc.id, (1 - distance).toFixed(4), doc.metadata.source);
}
