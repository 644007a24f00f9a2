import { lstat, readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { RagError } from '../errors.js';

/**
 * A model's own description of how to turn token vectors into a sentence vector, read the way
 * sentence-transformers reads it: modules.json (which modules, in which folders), the Pooling
 * module's config.json, a Normalize module, sentence_bert_config.json (max_seq_length) and
 * config_sentence_transformers.json (prompts). A folder without modules.json (a plain
 * transformers.js export, or our static model) gets mean pooling and normalisation, the
 * behaviour this service always had.
 */

/** Pooling modes in the order sentence-transformers concatenates them. */
export const POOLING_MODES = ['cls', 'max', 'mean', 'mean_sqrt_len_tokens', 'weightedmean', 'lasttoken'] as const;
export type PoolingMode = (typeof POOLING_MODES)[number];
/** EMBED_POOLING: `auto` follows the model folder; the others override it. */
export const POOLING_OVERRIDES = ['auto', 'cls', 'mean', 'max', 'lasttoken'] as const;
export type PoolingOverride = (typeof POOLING_OVERRIDES)[number];
export type EmbedKind = 'query' | 'document';

export interface SentenceProfile {
  pooling: PoolingMode[];
  /** Where the pooling came from: the model's 1_Pooling config, EMBED_POOLING, or the default (mean). */
  poolingSource: 'model' | 'override' | 'default';
  /** false: prompt tokens are masked out of pooling (Pooling include_prompt). */
  includePrompt: boolean;
  normalize: boolean;
  /** Longest token sequence (special tokens included); longer inputs are truncated. null: no limit known. */
  maxLength: number | null;
  prompts: { query?: string; document?: string };
  /** Dimension the Pooling config declares for token vectors (checked against the model output). */
  tokenDimension?: number;
}

const LEGACY_KEYS: Record<string, PoolingMode> = {
  pooling_mode_cls_token: 'cls',
  pooling_mode_max_tokens: 'max',
  pooling_mode_mean_tokens: 'mean',
  pooling_mode_mean_sqrt_len_tokens: 'mean_sqrt_len_tokens',
  pooling_mode_weightedmean_tokens: 'weightedmean',
  pooling_mode_lasttoken: 'lasttoken',
};
const MAX_CONFIG_BYTES = 1 << 20;
const MAX_PROMPT_CHARS = 2000;

const invalid = (dir: string, file: string, why: string, cause?: unknown) =>
  new RagError('RAG_MODEL_FILE_INVALID', `model file ${file} in ${dir} ${why}`, { details: { file }, ...(cause ? { cause } : {}) });

/**
 * Read a small JSON config file of the model folder; null when absent. The folder is untrusted:
 * the file must be a regular file (a FIFO would block the read forever), small, and must not
 * resolve (through links) outside the model folder.
 */
async function readConfig(dir: string, rel: string): Promise<Record<string, unknown> | unknown[] | null> {
  const path = join(dir, rel);
  const link = await lstat(path).catch(() => null);
  if (!link) return null;
  let info;
  let real: string;
  try {
    info = await stat(path);
    real = await realpath(path);
  } catch (cause) {
    throw invalid(dir, rel, 'is a broken link', cause);
  }
  const root = await realpath(dir);
  if (real !== root && !real.startsWith(root + sep)) throw invalid(dir, rel, 'points outside the model folder');
  if (!info.isFile()) throw invalid(dir, rel, 'is not a regular file');
  if (info.size > MAX_CONFIG_BYTES) throw invalid(dir, rel, `is too large (${info.size} bytes)`);
  try {
    const value: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (!value || typeof value !== 'object') throw new Error('not a JSON object or array');
    return value as Record<string, unknown> | unknown[];
  } catch (cause) {
    throw invalid(dir, rel, `is not valid JSON (${(cause as Error).message.slice(0, 120)})`, cause);
  }
}

/** A module folder named in modules.json: relative, inside the model folder. */
function modulePath(dir: string, raw: unknown): string {
  if (typeof raw !== 'string' || raw.length > 200 || isAbsolute(raw) || raw.includes('\0')) {
    throw invalid(dir, 'modules.json', `names a module path that is not a relative folder: ${JSON.stringify(raw)?.slice(0, 80)}`);
  }
  const clean = normalize(raw === '' ? '.' : raw);
  if (clean === '..' || clean.startsWith(`..${sep}`)) throw invalid(dir, 'modules.json', `names a module path outside the model folder: ${raw}`);
  return clean;
}

function parsePooling(dir: string, file: string, cfg: Record<string, unknown>): { modes: PoolingMode[]; includePrompt: boolean; tokenDimension?: number } {
  let modes: PoolingMode[];
  if ('pooling_mode' in cfg) {
    const raw = cfg.pooling_mode;
    const list = Array.isArray(raw) ? raw : [raw];
    modes = list.map((m) => {
      if (typeof m !== 'string' || !(POOLING_MODES as readonly string[]).includes(m)) throw invalid(dir, file, `has an unknown pooling_mode ${JSON.stringify(m)}`);
      return m as PoolingMode;
    });
  } else {
    modes = Object.entries(LEGACY_KEYS).filter(([k]) => cfg[k] === true).map(([, m]) => m);
  }
  if (modes.length === 0) modes = ['mean']; // sentence-transformers' default
  const includePrompt = cfg.include_prompt === undefined ? true : cfg.include_prompt === true;
  const dimRaw = cfg.embedding_dimension ?? cfg.word_embedding_dimension;
  const tokenDimension = typeof dimRaw === 'number' && Number.isInteger(dimRaw) && dimRaw > 0 ? dimRaw : undefined;
  return { modes, includePrompt, ...(tokenDimension ? { tokenDimension } : {}) };
}

function positiveInt(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e7 ? v : null;
}

function prompt(dir: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string' || value.length > MAX_PROMPT_CHARS) throw invalid(dir, 'config_sentence_transformers.json', 'has a prompt that is not a string of at most 2000 characters');
  return value;
}

/**
 * The sentence profile of a model folder. `modelConfig` and `tokenizerConfig` are the folder's
 * config.json and tokenizer_config.json (already read and checked by the loader).
 */
export async function readSentenceProfile(
  dir: string,
  modelConfig: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  override: PoolingOverride = 'auto',
): Promise<SentenceProfile> {
  const modules = await readConfig(dir, 'modules.json');
  let pooling: PoolingMode[] = ['mean'];
  let poolingSource: SentenceProfile['poolingSource'] = 'default';
  let includePrompt = true;
  let normalize = true;
  let tokenDimension: number | undefined;
  if (modules !== null) {
    if (!Array.isArray(modules)) throw invalid(dir, 'modules.json', 'is not a list of modules');
    normalize = false;
    let sawPooling = false;
    for (const m of modules) {
      if (!m || typeof m !== 'object') throw invalid(dir, 'modules.json', 'has an entry that is not an object');
      const { type, path } = m as { type?: unknown; path?: unknown };
      const kind = typeof type === 'string' ? type.split('.').pop() : undefined;
      const folder = modulePath(dir, path ?? '');
      if (kind === 'Transformer') continue;
      if (kind === 'Pooling') {
        const rel = join(folder, 'config.json');
        const cfg = await readConfig(dir, rel);
        if (!cfg || Array.isArray(cfg)) throw invalid(dir, rel, cfg ? 'is not a JSON object' : 'is missing (modules.json declares a Pooling module there)');
        const p = parsePooling(dir, rel, cfg);
        pooling = p.modes;
        includePrompt = p.includePrompt;
        tokenDimension = p.tokenDimension;
        poolingSource = 'model';
        sawPooling = true;
        continue;
      }
      if (kind === 'Normalize') {
        normalize = true;
        continue;
      }
      // Dense, LayerNorm, WordWeights, Router...: their weights are not in the ONNX graph a
      // transformers.js export ships, so the vectors would silently differ from the model's.
      throw invalid(dir, 'modules.json', `declares a ${String(kind ?? type)} module, which this loader cannot apply (supported: Transformer, Pooling, Normalize)`);
    }
    if (!sawPooling) poolingSource = 'default';
  }

  const st = await readConfig(dir, 'sentence_bert_config.json');
  const stMax = st && !Array.isArray(st) ? positiveInt(st.max_seq_length) : null;
  const tokMax = positiveInt(tokenizerConfig.model_max_length);
  const posMax = positiveInt(modelConfig.max_position_embeddings);
  const limits = [stMax, tokMax, posMax].filter((x): x is number => x !== null);
  const maxLength = limits.length ? Math.min(...limits) : null;

  const stc = await readConfig(dir, 'config_sentence_transformers.json');
  const prompts: SentenceProfile['prompts'] = {};
  if (stc && !Array.isArray(stc)) {
    const table = stc.prompts && typeof stc.prompts === 'object' && !Array.isArray(stc.prompts) ? (stc.prompts as Record<string, unknown>) : {};
    const fallback = typeof stc.default_prompt_name === 'string' ? table[stc.default_prompt_name] : undefined;
    // The names sentence-transformers' encode_query / encode_document look for.
    const q = prompt(dir, 'query' in table ? table.query : fallback);
    const docName = ['document', 'passage', 'corpus'].find((n) => n in table);
    const d = prompt(dir, docName ? table[docName] : fallback);
    if (q !== undefined) prompts.query = q;
    if (d !== undefined) prompts.document = d;
  }

  if (override !== 'auto') {
    pooling = [override];
    poolingSource = 'override';
  }
  return { pooling, poolingSource, includePrompt, normalize, maxLength, prompts, ...(tokenDimension ? { tokenDimension } : {}) };
}

export interface TokenBatch {
  /** [batch, seq, dim] token vectors, row-major. */
  hidden: Float32Array;
  dims: [number, number, number];
  /** [batch, seq] attention mask (1 real token, 0 padding). */
  mask: ArrayLike<number | bigint>;
  /** Tokens of the prompt at the start of each row (special start token included); 0: none. */
  promptLength: number;
}

/** poolTokens' scratch (it runs to its end synchronously, so one set serves every call). */
const poolScratch = { mask: new Float64Array(0), weights: new Float64Array(0), sums: new Float64Array(0) };

/**
 * Pool token vectors into sentence vectors exactly as sentence-transformers' Pooling module does
 * (modes concatenated in order), then L2-normalise when the profile says so.
 */
export function poolTokens(batch: TokenBatch, profile: Pick<SentenceProfile, 'pooling' | 'normalize' | 'includePrompt'>): number[][] {
  const [rows, seq, dim] = batch.dims;
  const { hidden } = batch;
  const modes = profile.pooling;
  const out: number[][] = new Array<number[]>(rows);
  // Scratch reused by every row and call: the row's mask and one mode's sums (double precision). A
  // typed array of more than 64 bytes is allocated outside V8's heap, a few microseconds a call.
  if (poolScratch.mask.length < seq) poolScratch.mask = new Float64Array(seq);
  if (poolScratch.sums.length < dim) poolScratch.sums = new Float64Array(dim);
  if (poolScratch.weights.length < seq) poolScratch.weights = new Float64Array(seq);
  const m = poolScratch.mask;
  const v = poolScratch.sums;
  const w = poolScratch.weights;
  for (let r = 0; r < rows; r++) {
    let leftPad = -1;
    for (let s = 0; s < seq; s++) {
      m[s] = Number(batch.mask[r * seq + s]);
      if (leftPad < 0 && m[s] !== 0) leftPad = s;
    }
    if (!profile.includePrompt && batch.promptLength > 0) {
      for (let s = 0; s < Math.min(seq, Math.max(0, leftPad) + batch.promptLength); s++) m[s] = 0;
    }
    // Token s's vector starts at hidden[rowAt + s * dim].
    const rowAt = r * seq * dim;
    const vec = new Array<number>(modes.length * dim);
    for (let k = 0; k < modes.length; k++) {
      const mode = modes[k]!;
      const copy = (s: number) => {
        for (let d = 0, o = rowAt + s * dim; d < dim; d++) v[d] = hidden[o + d]!;
      };
      if (mode === 'cls') {
        let first = 0;
        while (first < seq && m[first] === 0) first++;
        if (first === seq) first = 0;
        copy(first);
      } else if (mode === 'max') {
        v.fill(-Infinity);
        for (let s = 0; s < seq; s++) {
          if (!m[s]) continue;
          for (let d = 0, o = rowAt + s * dim; d < dim; d++) v[d] = Math.max(v[d]!, hidden[o + d]!);
        }
        for (let d = 0; d < dim; d++) if (v[d] === -Infinity) v[d] = 0;
      } else if (mode === 'lasttoken') {
        let last = seq - 1;
        while (last >= 0 && m[last] === 0) last--;
        if (last >= 0) copy(last);
        else v.fill(0);
      } else {
        // The token weights first; then per dimension the weighted sum over tokens in token order
        // (the same additions as summing token by token into every dimension, one store a dimension).
        const weighted = mode === 'weightedmean';
        let weightSum = 0;
        for (let s = 0; s < seq; s++) {
          w[s] = m[s]! * (weighted ? s + 1 : 1);
          weightSum += w[s]!;
        }
        const denom = Math.max(weightSum, 1e-9);
        const div = mode === 'mean_sqrt_len_tokens' ? Math.sqrt(denom) : denom;
        for (let d = 0; d < dim; d++) {
          let sum = 0;
          for (let s = 0, o = rowAt + d; s < seq; s++, o += dim) if (w[s]) sum = sum + w[s]! * hidden[o]!;
          v[d] = sum / div;
        }
      }
      for (let d = 0; d < dim; d++) vec[k * dim + d] = v[d]!;
    }
    if (profile.normalize) {
      let n = 0;
      for (let i = 0; i < vec.length; i++) n += vec[i]! * vec[i]!;
      const norm = Math.max(Math.sqrt(n), 1e-12);
      for (let i = 0; i < vec.length; i++) vec[i] = vec[i]! / norm;
    }
    out[r] = vec;
  }
  return out;
}
