#!/usr/bin/env node
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig, type Config } from '../config.js';
import { isRagError } from '../errors.js';
import { chooseModelName, resolveModelDir } from '../embeddings/model-folders.js';
import { loadEmbeddingModel, type EmbeddingModel } from '../embeddings/model-loader.js';
import { createSilentLogger } from '../observability/logger.js';
import { checkAcceptanceAgainst, findAcceptanceFile, readAcceptanceFile } from './acceptance-file.js';
import { importChromaStore } from './import-chroma.js';
import { loadDocuments } from './load-documents.js';
import { DEFAULT_COLLECTION, publishStoreVersion } from './publish.js';
import { publishSharedVersion, rollbackShared } from './publish-shared.js';
import { DEFAULT_CHUNKING, splitDocuments } from './split-documents.js';

const USAGE = `usage: npm run ingest -- <docs dir> [options]
       npm run ingest -- --from-chroma <Chroma folder> [--out DIR] [--model NAME] [--collection NAME]
                         [--version NAME] [--no-activate] [--keep N] [--acceptance FILE] [--no-serving-index]

Configuration comes from the same environment variables as the service (see the README's table);
an option given here wins over its variable.

  --out DIR            vector store folder to publish into (VECTORSTORE_DIR, default ./vectorstore)
  --models-dir DIR     models folder (MODELS_DIR, default ./models)
  --model NAME         model under --models-dir (MODEL_NAME, else the only/default one)
  --collection NAME    Chroma collection name (CHROMA_COLLECTION, default langchain: the name
                       LangChain's Chroma vector store opens by default)
  --chunk-size N       characters per chunk (default 1000)
  --chunk-overlap N    characters of overlap (default 150)
  --batch N            chunks per embedding batch (default 256)
  --keep N             older versions to keep (KEEP_VERSIONS, default 3)
  --version NAME       version folder name (default v<UTC timestamp>-<random>)
  --no-activate        publish without pointing CURRENT at it
  --acceptance FILE    the version's acceptance questions (acceptance.json schema; default: the docs
                       folder's own acceptance.json if it has one): every replica or reload refuses the
                       version when their recall@k is below minRecall. Validated before anything is written
  --no-serving-index   do not ship serving-index.bin. By default a version of up to 100,000 chunks
                       ships one (vectors, texts, metadata, compiled keyword index; ~+30% on disk):
                       the service then loads it without a Chroma child, in a third of the CPU
  --serving-index      require serving-index.bin (refused above 100,000 chunks)
  --quiet              no progress bar

A Chroma folder built elsewhere (a Python LangChain persist_directory):
  --from-chroma DIR    publish its collection as a version folder with a manifest and serving-index.bin
                       (records, vectors and distance space as Chroma returns them; the keyword index
                       built as the service builds it), so the service loads it without a Chroma child.
                       The folder is copied first, never opened by Chroma itself. --model names the model
                       its vectors were made with (its dimension must match); --collection picks one of
                       several collections

Shared Chroma (replicas follow a pointer; see docs/operations.md "Shared Chroma"):
  --chroma-url URL     publish to this Chroma server as collection <name>--<version>, then move the
                       pointer <name> to it (one write); old versions are collected (KEEP_VERSIONS)
  --name NAME          the store name replicas follow (default docs)
  --rollback           with --chroma-url: point <name> back at its previous version (no docs dir)
  --replica-ttl-ms N   heartbeats older than this do not protect a version from GC (REPLICA_TTL_MS, default 30000)`;

/** An integer option of at least `min`. */
function num(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
  return n;
}

type ConfigOptions = { out?: string | undefined; 'models-dir'?: string | undefined; model?: string | undefined; collection?: string | undefined };

/** The service's configuration (one schema, one set of defaults); command-line options win. */
function configWith(values: ConfigOptions): Config {
  return loadConfig(process.env, {
    ...(values.out !== undefined ? { vectorstoreDir: values.out } : {}),
    ...(values['models-dir'] !== undefined ? { modelsDir: values['models-dir'] } : {}),
    ...(values.model !== undefined ? { modelName: values.model } : {}),
    ...(values.collection !== undefined ? { collection: values.collection } : {}),
  });
}

/** The model as the service loads it: the same pooling/dtype choice (EMBED_POOLING, MODEL_DTYPE), or a store's vectors would not match its queries. */
async function loadModel(config: Config, modelName: string): Promise<EmbeddingModel> {
  return loadEmbeddingModel({ dir: await resolveModelDir(config.modelsDir, modelName), dtype: config.modelDtype, pooling: config.pooling });
}

export async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      'models-dir': { type: 'string' },
      model: { type: 'string' },
      collection: { type: 'string' },
      'chunk-size': { type: 'string', default: String(DEFAULT_CHUNKING.chunkSize) },
      'chunk-overlap': { type: 'string', default: String(DEFAULT_CHUNKING.chunkOverlap) },
      batch: { type: 'string', default: '256' },
      keep: { type: 'string' },
      version: { type: 'string' },
      'no-activate': { type: 'boolean', default: false },
      'chroma-url': { type: 'string' },
      name: { type: 'string' },
      rollback: { type: 'boolean', default: false },
      'replica-ttl-ms': { type: 'string' },
      acceptance: { type: 'string' },
      'serving-index': { type: 'boolean', default: false },
      'no-serving-index': { type: 'boolean', default: false },
      'from-chroma': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const sharedUrl = values['chroma-url'];
  const sharedName = values.name ?? 'docs';
  if (sharedUrl && values.rollback && positionals.length === 0) {
    const pointer = await rollbackShared(sharedUrl, sharedName);
    console.log(`ingest: "${sharedName}" now points at ${pointer.version} (was ${pointer.previous})`);
    return 0;
  }
  if (values['from-chroma'] !== undefined && !values.help) {
    if (positionals.length > 0 || sharedUrl) throw new Error('--from-chroma takes no docs folder and no --chroma-url');
    return importFolder(values['from-chroma'], values);
  }
  if (values.help || positionals.length !== 1) {
    console.error(USAGE);
    return values.help ? 0 : 2;
  }
  if (values['serving-index'] && values['no-serving-index']) throw new Error('--serving-index and --no-serving-index contradict each other');
  const chunkSize = num('chunk-size', values['chunk-size'], 50);
  const chunkOverlap = num('chunk-overlap', values['chunk-overlap'], 0);
  if (chunkOverlap >= chunkSize) throw new Error('--chunk-overlap must be smaller than --chunk-size');
  const docsDir = resolve(positionals[0]!);
  // Refused before any model load or write: a bad acceptance file publishes nothing.
  const acceptance = await findAcceptanceFile(docsDir, values.acceptance);
  const config = configWith(values);
  const keepVersions = values.keep !== undefined ? num('keep', values.keep, 0) : config.keepVersions;
  const outDir = config.vectorstoreDir;
  const collection = config.collection ?? DEFAULT_COLLECTION;
  const modelName = await chooseModelName(config.modelsDir, config.modelName);

  const t0 = performance.now();
  const { documents, skipped } = await loadDocuments(docsDir);
  const chunks = await splitDocuments(documents, { chunkSize, chunkOverlap });
  if (acceptance) checkAcceptanceAgainst(acceptance, chunks);
  const model = await loadModel(config, modelName);
  console.log(
    `ingest: ${documents.length} documents -> ${chunks.length} chunks; model ${model.id} (${model.dimension}-d)` +
      (skipped.length ? `; skipped ${skipped.length} unsupported files` : '') +
      (acceptance ? `; acceptance: ${acceptance.spec.questions.length} questions from ${acceptance.path} (recall@${acceptance.spec.k} >= ${acceptance.spec.minRecall})` : ''),
  );
  const bar = values.quiet || !process.stdout.isTTY ? null : new cliProgress.SingleBar({ format: 'embedding {bar} {value}/{total} chunks' }, cliProgress.Presets.shades_classic);
  bar?.start(chunks.length, 0);
  let lastLogged = 0;
  try {
    if (sharedUrl) {
      const shared = await publishSharedVersion({
        url: sharedUrl,
        name: sharedName,
        chunks,
        model,
        batchSize: num('batch', values.batch, 1),
        keepVersions,
        replicaTtlMs: values['replica-ttl-ms'] !== undefined ? num('replica-ttl-ms', values['replica-ttl-ms'], 1000) : config.replicaTtlMs,
        ...(values.version ? { version: values.version } : {}),
        ...(acceptance ? { acceptance: acceptance.spec } : {}),
        onProgress: (done) => bar?.update(done),
      });
      bar?.stop();
      console.log(
        `ingest: published ${shared.collection} (${shared.count} chunks, sha256 ${shared.checksum.slice(0, 12)}` +
          (shared.acceptanceSha256 ? `, acceptance sha256 ${shared.acceptanceSha256.slice(0, 12)}` : '') +
          `) and pointed "${sharedName}" at ${shared.version} in ${Math.round(performance.now() - t0)} ms` +
          (shared.deleted.length ? `; deleted ${shared.deleted.join(', ')}` : ''),
      );
      return 0;
    }
    const result = await publishStoreVersion({
      outDir,
      chunks,
      model,
      logger: createSilentLogger(),
      collection,
      documentCount: documents.length,
      chunking: { chunkSize, chunkOverlap },
      batchSize: num('batch', values.batch, 1),
      keepVersions,
      activate: !values['no-activate'],
      ...(acceptance ? { acceptance: acceptance.spec } : {}),
      servingIndex: values['serving-index'] ? true : values['no-serving-index'] ? false : 'auto',
      ...(values.version ? { version: values.version } : {}),
      onProgress: (done, total) => {
        bar?.update(done);
        if (!bar && !values.quiet && (done === total || done - lastLogged >= 2000)) {
          lastLogged = done;
          console.log(`embedding ${done}/${total} chunks`);
        }
      },
    });
    bar?.stop();
    console.log(
      `ingest: published ${result.version} (${result.manifest.chunkCount} chunks${result.servingIndex ? ', with serving-index.bin' : ''}) to ${result.dir} in ${Math.round(performance.now() - t0)} ms` +
        (result.pruned.length ? `; pruned ${result.pruned.join(', ')}` : ''),
    );
  } finally {
    bar?.stop();
    await model.dispose();
  }
  return 0;
}

/** `--from-chroma DIR`: publish a Chroma folder built elsewhere as a version (import-chroma.ts). */
async function importFolder(sourceDir: string, values: ConfigOptions & { keep?: string | undefined; version?: string | undefined; 'no-activate'?: boolean | undefined; acceptance?: string | undefined; 'no-serving-index'?: boolean | undefined }): Promise<number> {
  const config = configWith(values);
  const keep = values.keep !== undefined ? num('keep', values.keep, 0) : config.keepVersions;
  // Refused before anything is read or written: a bad acceptance file publishes nothing.
  const acceptance = values.acceptance !== undefined ? await readAcceptanceFile(values.acceptance) : null;
  const t0 = performance.now();
  const model = await loadModel(config, await chooseModelName(config.modelsDir, config.modelName));
  try {
    const result = await importChromaStore({
      sourceDir: resolve(sourceDir),
      outDir: config.vectorstoreDir,
      model,
      logger: createSilentLogger(),
      collection: config.collection,
      version: values.version,
      keepVersions: keep,
      activate: !values['no-activate'],
      acceptance: acceptance ?? undefined,
      ...(values['no-serving-index'] ? { servingIndexMaxChunks: 0 } : {}),
    });
    console.log(
      `ingest: published ${result.version} from ${resolve(sourceDir)} (collection ${result.manifest.collection}, ${result.manifest.chunkCount} records, model ${model.id}` +
        `${result.servingIndex ? ', with serving-index.bin' : ''}) to ${result.dir} in ${Math.round(performance.now() - t0)} ms` +
        (result.pruned.length ? `; pruned ${result.pruned.join(', ')}` : ''),
    );
  } finally {
    await model.dispose();
  }
  return 0;
}

const isMain = process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href;
if (isMain) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`ingest failed: ${isRagError(err) ? `[${err.code}] ` : ''}${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
