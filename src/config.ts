import { resolve } from 'node:path';
import { z } from 'zod';
import { RagError } from './errors.js';

const bool = z
  .union([z.boolean(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'boolean') return v;
    const s = v.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) return true;
    if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected true/false, got "${v}"` });
    return z.NEVER;
  });
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const url = optionalString.refine((v) => v === undefined || /^https?:\/\/[^\s]+$/.test(v), 'expected an http(s) URL');
const list = z
  .string()
  .optional()
  .transform((v) => (v ?? '').split(',').map((s) => s.trim()).filter(Boolean));

/**
 * Every knob: [env name, schema with default, description]. The README's configuration table
 * is this list; `npm run config:table` prints it.
 */
export const configSpec = {
  host: ['HOST', z.string().default('127.0.0.1'), 'Address the HTTP server listens on (0.0.0.0 in the container).'],
  port: ['PORT', int(0, 65535).default(8080), 'HTTP port (0 picks a free one).'],
  logLevel: ['LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), 'pino log level.'],
  modelsDir: ['MODELS_DIR', z.string().default('./models'), 'Folder holding transformers.js model folders (one per model), or a Hugging Face hub cache (`models--org--name/snapshots/<rev>/`, e.g. ~/.cache/huggingface/hub).'],
  modelName: ['MODEL_NAME', optionalString, 'Model to serve: a folder under MODELS_DIR, or `org/name` in a hub cache (the snapshot refs/main names); default: the only one, or the one named in the active store manifest, or glove-sif-100d.'],
  modelDtype: ['MODEL_DTYPE', z.enum(['auto', 'fp32', 'fp16', 'q8', 'int8', 'uint8', 'q4']).default('auto'), 'ONNX weights variant to load (auto: the model config\'s transformers.js_config.dtype, else fp32).'],
  pooling: ['EMBED_POOLING', z.enum(['auto', 'cls', 'mean', 'max', 'lasttoken']).default('auto'), 'Pooling of token vectors into one sentence vector. auto: what the model folder declares (sentence-transformers 1_Pooling/config.json), mean when it declares nothing; any other value overrides the model.'],
  embedBatchMax: ['EMBED_BATCH_MAX', int(1, 512).default(32), 'Most query texts coalesced into one model call.'],
  embedBatchWaitMs: ['EMBED_BATCH_WAIT_MS', int(0, 1000).default(2), 'How long a query waits for others to share its model call.'],
  vectorstoreDir: ['VECTORSTORE_DIR', z.string().default('./vectorstore'), 'Folder the store versions are published to (watched).'],
  runtimeDir: ['RUNTIME_DIR', z.string().default('./.runtime'), 'Private folder for store snapshots served by Chroma children, the serving index cache and the model facts cache.'],
  chromaUrl: ['CHROMA_URL', url, 'Use this running Chroma server instead of starting one per store version.'],
  storeName: ['STORE_NAME', optionalString, 'With CHROMA_URL: follow the shared pointer of this store name (versioned collections <name>--<version> published by `npm run ingest -- --chroma-url URL --name NAME`); unset: serve CHROMA_COLLECTION as it is.'],
  pointerPollMs: ['POINTER_POLL_MS', int(100, 3_600_000).default(2_000), 'With STORE_NAME: how often a replica reads the pointer and writes its heartbeat.'],
  replicaTtlMs: ['REPLICA_TTL_MS', int(1000, 86_400_000).default(30_000), 'Shared Chroma, read by the publisher (`npm run ingest -- --chroma-url`; `--replica-ttl-ms` overrides), not by replicas: a replica heartbeat older than this no longer keeps its version from garbage collection. Keep it several times POINTER_POLL_MS.'],
  replicaId: ['REPLICA_ID', optionalString, 'With STORE_NAME: this replica\'s name in the heartbeats (default host:pid).'],
  collection: ['CHROMA_COLLECTION', optionalString, 'Collection to serve (default: the manifest\'s, else the only one).'],
  chromaStartTimeoutMs: ['CHROMA_START_TIMEOUT_MS', int(1000, 300_000).default(30_000), 'How long a Chroma child may take to answer its first heartbeat.'],
  storeQueryTimeoutMs: ['STORE_QUERY_TIMEOUT_MS', int(100, 600_000).default(5_000), 'Every query to a Chroma server ends within this; a hung child gives 503 RAG_STORE_TIMEOUT. Opening and checking a store (whose first calls load its HNSW index) has INDEX_LOAD_TIMEOUT_MS.'],
  chromaHeartbeatMs: ['CHROMA_HEARTBEAT_MS', int(0, 600_000).default(1_000), 'Heartbeat interval of each Chroma child (0: off).'],
  chromaHeartbeatMisses: ['CHROMA_HEARTBEAT_MISSES', int(1, 1000).default(3), 'Heartbeats missed in a row before a child is unhealthy (/readyz 503), killed and restarted.'],
  reloadPhaseTimeoutMs: ['RELOAD_PHASE_TIMEOUT_MS', int(100, 3_600_000).default(120_000), 'Each build phase (model, snapshot, open, validate, accept, warmup) is abandoned after this (RAG_RELOAD_TIMEOUT). Raise it for stores of a million chunks (their open phase takes minutes).'],
  reloadReplayN: ['RELOAD_REPLAY_N', int(0, 1000).default(20), 'Recent distinct questions replayed on a standby generation; the status shows its overlap@k with the active one (0: off).'],
  serveIndexMaxMb: ['SERVE_INDEX_MAX_MB', int(0, 1_000_000).default(2048), 'Store versions up to this size on disk (MiB) are read into process memory and served there (exact vector search, no Chroma child); larger ones keep a Chroma child per generation. 0: always a Chroma child. Ignored with CHROMA_URL.'],
  serveIndexCache: ['SERVE_INDEX_CACHE', bool.default(true), 'Keep each in-process serving index in RUNTIME_DIR/index-cache, keyed by the verified store version\'s file identities, so a restart on an unchanged version skips the snapshot and the Chroma loader child; a bad or stale entry is logged and the store read as usual. false: always read through Chroma.'],
  buildThreadMaxBuilds: ['BUILD_THREAD_MAX_BUILDS', int(1, 1000).default(8), 'How many index builds one build thread runs before a fresh thread replaces it (memory against swap CPU). 8 (since session 23): a thread\'s start and its code\'s compilation are paid once per 8 swaps (the kept thread keeps its optimised code, its garbage collected after each build, its young generation capped at 8 MiB): at 10,000 chunks read through Chroma beside 1,000 req/s, CPU per swap 843-1,358 ms against 1,170-1,380 and write -> serving p90 945-1,318 ms against 1,340-1,703 in three alternated pairs, for ~30-55 MiB more RSS (RSS after 100 swaps of 3,000 chunks 1.01-1.02x the first). 1: a fresh thread per build, the least memory (bench/results/swaps-2026-12-06-s23.md).'],
  loaderStandbyMs: ['LOADER_STANDBY_MS', int(0, 86_400_000).default(60_000), 'Keep one warm Chroma loader child (Node and the Chroma binding loaded, ~56 MiB, niced) this long for the next update, started after a version is read through a loader child and when the store folder starts being written (not while a reload runs: its build adopts the standby; nor while the version served came from its serving-index.bin, as the next one most likely needs no loader child): it saves ~150-200 ms of write -> serving. A fresh index build thread is kept ready as long (its start, ~135 ms of CPU, moved off the swap). 0: none (every update starts its loader and build thread cold).'],
  indexLoadTimeoutMs: ['INDEX_LOAD_TIMEOUT_MS', int(1000, 3_600_000).default(600_000), 'How long reading a store into the in-process index (or building its keyword index) may take.'],
  hybridDenseWeight: ['HYBRID_DENSE_WEIGHT', z.coerce.number().min(0).max(100).default(0.3), 'Weight of the dense ranking in hybrid fusion (RRF).'],
  hybridKeywordWeight: ['HYBRID_KEYWORD_WEIGHT', z.coerce.number().min(0).max(100).default(1), 'Weight of the BM25 ranking in hybrid fusion (RRF).'],
  hybridRrfK: ['HYBRID_RRF_K', int(1, 1000).default(10), 'Reciprocal rank fusion constant (lower: top ranks count more).'],
  hybridCandidates: ['HYBRID_CANDIDATES', int(1, 1000).default(20), 'Candidates each side contributes to hybrid fusion (at least 4 x k).'],
  defaultK: ['DEFAULT_K', int(1, 100).default(4), 'Chunks retrieved when a request gives no k.'],
  maxK: ['MAX_K', int(1, 1000).default(50), 'Largest k a request may ask for.'],
  maxQuestionChars: ['MAX_QUESTION_CHARS', int(1, 100_000).default(4000), 'Longest question accepted.'],
  bodyLimit: ['BODY_LIMIT', z.string().default('1mb'), 'Largest JSON body accepted (413 above).'],
  requestTimeoutMs: ['REQUEST_TIMEOUT_MS', int(100, 600_000).default(30_000), 'A request still running after this gets 503 RAG_HTTP_TIMEOUT.'],
  llmBaseUrl: ['LLM_BASE_URL', url, 'OpenAI-compatible upstream (vLLM, Ollama, llama.cpp) that writes answers; unset: offline extractive answers.'],
  llmProvider: ['LLM_PROVIDER', z.enum(['openai', 'ollama']).default('openai'), 'How LangChain\'s initChatModel talks to LLM_BASE_URL: `openai` (any OpenAI-compatible server: vLLM, llama.cpp, Ollama\'s /v1, LiteLLM) or `ollama` (Ollama\'s native API; LLM_BASE_URL without /v1).'],
  llmModel: ['LLM_MODEL', z.string().default('default'), 'Model name sent to the upstream; /v1/chat/completions also accepts it as `model` (besides `rag`).'],
  llmApiKey: ['LLM_API_KEY', optionalString, 'Bearer key for the upstream.'],
  llmTimeoutMs: ['LLM_TIMEOUT_MS', int(100, 600_000).default(60_000), 'Upstream call timeout.'],
  llmTemperature: ['LLM_TEMPERATURE', z.coerce.number().min(0).max(2).default(0.2), 'Upstream sampling temperature.'],
  llmMaxTokens: ['LLM_MAX_TOKENS', int(1, 32_768).default(512), 'Upstream answer length cap.'],
  waitForStore: ['WAIT_FOR_STORE', bool.default(true), 'Start even when no valid model/store pair exists yet: answer 503 RAG_NOT_READY (with the reason) until one is published. false: exit at start-up instead.'],
  watch: ['WATCH', bool.default(true), 'Watch VECTORSTORE_DIR and MODELS_DIR and hot-reload on change.'],
  watchPolling: ['WATCH_POLLING', bool.default(false), 'Poll instead of inotify (network filesystems).'],
  watchDebounceMs: ['WATCH_DEBOUNCE_MS', int(0, 60_000).default(100), 'Quiet time after the last file event before a reload starts.'],
  watchStabilityMs: ['WATCH_STABILITY_MS', int(0, 60_000).default(200), 'A file must keep its size and mtime this long to count as written (not waited for when `CURRENT` is replaced: a pointer flip is a finished write).'],
  watchRescanMs: ['WATCH_RESCAN_MS', int(0, 3_600_000).default(10_000), 'Full rescan interval, a safety net for lost events and re-created folders (0: off).'],
  drainTimeoutMs: ['DRAIN_TIMEOUT_MS', int(0, 600_000).default(30_000), 'How long an old generation waits for its in-flight requests.'],
  shutdownTimeoutMs: ['SHUTDOWN_TIMEOUT_MS', int(0, 600_000).default(30_000), 'How long SIGTERM waits for in-flight requests.'],
  reloadHistory: ['RELOAD_HISTORY', int(1, 1000).default(50), 'Reload attempts kept for /admin/status.'],
  keepVersions: ['KEEP_VERSIONS', int(0, 100).default(3), 'Older store versions `npm run ingest` (and a document change from the console) keeps beside the one it publishes (older ones are deleted; the one CURRENT named before is always kept). `--keep N` overrides it.'],
  docsUploadMaxMb: ['DOCS_UPLOAD_MAX_MB', int(1, 1024).default(10), 'Largest document the console uploads to /admin/documents (MiB; 413 RAG_DOCS_TOO_LARGE above).'],
  auditLogDir: ['AUDIT_LOG_DIR', z.string().default('./logs/audit'), 'Folder of the audit log (one JSON line per /v1 and /admin request); `off` turns it off.'],
  auditMaxSize: ['AUDIT_MAX_SIZE', z.string().regex(/^\d+[BKMG]$/, 'expected a size like 10M').default('10M'), 'Rotate the audit log at this size.'],
  auditInterval: ['AUDIT_INTERVAL', z.string().regex(/^\d+[smhd]$/, 'expected an interval like 1d').default('1d'), 'Rotate the audit log at least this often.'],
  auditMaxFiles: ['AUDIT_MAX_FILES', int(1, 10_000).default(14), 'Rotated audit files kept (gzip-compressed).'],
  auditBodyMaxBytes: ['AUDIT_BODY_MAX_BYTES', int(0, 10_000_000).default(16_384), 'Request bodies are cut to this many bytes in the audit log.'],
  maxConcurrent: ['MAX_CONCURRENT', int(1, 100_000).default(64), 'Requests served at once; above it, 429 with Retry-After.'],
  apiKeys: ['API_KEYS', list, 'Comma-separated Bearer keys for /v1/* (empty: open).'],
  adminApiKey: ['ADMIN_API_KEY', optionalString, 'Bearer key for /admin/* (unset: admin routes open only when API_KEYS is empty too).'],
} as const;

type Spec = typeof configSpec;
export type Config = { readonly [K in keyof Spec]: z.output<Spec[K][1]> };

/** Parse the environment into a frozen Config; a bad value names its env variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Record<keyof Spec, unknown>> = {}): Config {
  const shape: Record<string, z.ZodTypeAny> = {};
  const input: Record<string, unknown> = {};
  for (const [key, [envName, schema]] of Object.entries(configSpec)) {
    shape[key] = schema;
    const fromEnv = env[envName];
    input[key] = key in overrides ? overrides[key as keyof Spec] : fromEnv === '' && !(schema instanceof z.ZodOptional) ? undefined : fromEnv;
  }
  const parsed = z.object(shape).safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const key = String(i.path[0]) as keyof Spec;
      const envName = configSpec[key]?.[0] ?? key;
      return `${envName}: ${i.message} (got ${JSON.stringify(input[key])})`;
    });
    throw new RagError('RAG_CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, { cause: parsed.error });
  }
  const cfg = parsed.data as Record<string, unknown>;
  for (const k of ['modelsDir', 'vectorstoreDir', 'runtimeDir'] as const) cfg[k] = resolve(String(cfg[k]));
  if (cfg.auditLogDir !== 'off') cfg.auditLogDir = resolve(String(cfg.auditLogDir));
  if ((cfg.defaultK as number) > (cfg.maxK as number)) {
    throw new RagError('RAG_CONFIG_INVALID', `invalid configuration: DEFAULT_K (${cfg.defaultK}) is larger than MAX_K (${cfg.maxK})`);
  }
  return Object.freeze(cfg) as Config;
}

/** The configuration table for the README (Markdown). */
export function configTable(): string {
  const rows = Object.values(configSpec).map(([envName, schema, doc]) => {
    const def = (schema as z.ZodTypeAny).safeParse(undefined);
    const shown = def.success && def.data !== undefined && !(Array.isArray(def.data) && def.data.length === 0) ? `\`${String(def.data)}\`` : '(unset)';
    return `| \`${envName}\` | ${shown} | ${doc} |`;
  });
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n');
}
