import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSilentLogger } from '../../src/observability/logger.js';
import { ChromaServer } from '../../src/store/chroma-server.js';
import { ChromaStore } from '../../src/store/chroma-store.js';
import { MetadataColumn } from '../../src/store/metadata-columns.js';
import { encodeTextColumn, TextColumn } from '../../src/store/record-columns.js';
import { compileRowFilter, compileWhere, compileWhereDocument, type WhereDocument, type WhereFilter } from '../../src/store/where-filter.js';

/**
 * The in-process filter against the real Chroma server on the same records: a few hundred
 * randomised where / whereDocument filters (fixed seed), identical id sets required. Each filter
 * runs twice in process, over metadata objects and texts, and over a metadata column
 * (metadata-columns.ts) and a text column searched by its bytes (record-columns.ts `containing`,
 * in small segments), what an in-process generation holds, made from the records as Chroma gives
 * them back; both must give Chroma's ids.
 */
const logger = createSilentLogger();
const WORDS = ['alpha', 'Beta', 'gamma', 'delta', 'retry', 'Retry', 'queue', 'worker', 'x-1', 'HQ-E1042', 'naïve', 'café'];
const STRINGS = ['a', 'b', 'c', 'A', '1', 'true', ''];
const N = 240;

interface Row {
  id: string;
  text: string;
  metadata: Record<string, string | number | boolean>;
}

/** Deterministic records: every field is sometimes missing, numbers are ints and floats, some strings look like numbers. */
function makeRows(): Row[] {
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const pick = <T,>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!;
  return Array.from({ length: N }, (_, i) => {
    const metadata: Row['metadata'] = { i };
    if (rand() < 0.8) metadata.n = Math.floor(rand() * 7) - 2; // ints -2..4
    if (rand() < 0.6) metadata.f = Math.round((rand() * 6 - 2) * 4) / 4; // floats (some whole: stored as ints by JSON)
    if (rand() < 0.7) metadata.s = pick(STRINGS.filter(Boolean));
    if (rand() < 0.6) metadata.b = rand() < 0.5;
    if (rand() < 0.5) metadata.mixed = pick<string | number | boolean>([1, 0, true, false, '1', 'x', 2.5]);
    const words = Array.from({ length: 3 + Math.floor(rand() * 6) }, () => pick(WORDS));
    return { id: `r${String(i).padStart(3, '0')}`, text: words.join(rand() < 0.2 ? '\n' : ' '), metadata };
  });
}

const FIELDS = ['n', 'f', 's', 'b', 'mixed', 'absent'] as const;
const scalar = fc.oneof(
  fc.integer({ min: -3, max: 5 }),
  fc.constantFrom(0.5, 1.25, -1.75, 2.5),
  fc.constantFrom(...STRINGS.filter(Boolean)),
  fc.boolean(),
);
const num = fc.oneof(fc.integer({ min: -3, max: 5 }), fc.constantFrom(0.5, 1.25, -1.75, 2.5));
const leaf: fc.Arbitrary<WhereFilter> = fc.tuple(fc.constantFrom(...FIELDS), fc.integer({ min: 0, max: 8 }), scalar, num, fc.array(scalar, { minLength: 1, maxLength: 4 })).map(([f, op, s, n, list]) => {
  switch (op) {
    case 0: return { [f]: s };
    case 1: return { [f]: { $eq: s } };
    case 2: return { [f]: { $ne: s } };
    case 3: return { [f]: { $gt: n } };
    case 4: return { [f]: { $gte: n } };
    case 5: return { [f]: { $lt: n } };
    case 6: return { [f]: { $lte: n } };
    case 7: return { [f]: { $in: list } };
    default: return { [f]: { $nin: list } };
  }
});
const where: fc.Arbitrary<WhereFilter> = fc.letrec<{ w: WhereFilter }>((tie) => ({
  w: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.record({ $and: fc.array(tie('w'), { minLength: 2, maxLength: 3 }) }),
    fc.record({ $or: fc.array(tie('w'), { minLength: 2, maxLength: 3 }) }),
  ),
})).w;

// Patterns in the syntax Rust's regex crate and JavaScript's RegExp read the same way.
const PATTERNS = [
  '^alpha', 'gamma$', '[Rr]etry', 'x-\\d', 'HQ-E\\d{4}', 'qu+eue', '(alpha|delta) worker', '\\bBeta\\b', 'caf.', 'na.ve', '^\\w+\\s\\w+$',
  '(?i)retry', 'na\\wve', '\\bcaf\\w\\b', '[[:upper:]]\\w+', '\\pL{5}\\s', '(?s)alpha.gamma', '\\Bet', '[^a-z ]{2}', '\\-1', '(?:de|ga)(?P<x>m|l)',
];
const docLeaf: fc.Arbitrary<WhereDocument> = fc.oneof(
  fc.constantFrom(...WORDS, 'ret', 'a w', 'é').map((w) => ({ $contains: w })),
  fc.constantFrom(...WORDS, 'lpha').map((w) => ({ $not_contains: w })),
  fc.constantFrom(...PATTERNS).map((p) => ({ $regex: p })),
  fc.constantFrom(...PATTERNS).map((p) => ({ $not_regex: p })),
);
const whereDocument: fc.Arbitrary<WhereDocument> = fc.oneof(
  { weight: 3, arbitrary: docLeaf },
  { weight: 1, arbitrary: fc.array(docLeaf, { minLength: 2, maxLength: 3 }).map((xs) => ({ $and: xs })) },
  { weight: 1, arbitrary: fc.array(docLeaf, { minLength: 2, maxLength: 3 }).map((xs) => ({ $or: xs })) },
);

let server: ChromaServer;
let dir: string;
let rows: Row[];
/** The records' metadata as read back from Chroma, as a column (row i = rows[i]). */
let column: MetadataColumn;
/** The records' documents as read back from Chroma, as a text column (row i = rows[i]). */
let documents: TextColumn;
let collection: Awaited<ReturnType<ReturnType<typeof ChromaStore.client>['getCollection']>>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-t-filter-'));
  server = new ChromaServer({ dataDir: dir, logger });
  await server.start();
  const client = ChromaStore.client(server.url);
  collection = await client.createCollection({ name: 'filters', embeddingFunction: null, configuration: { hnsw: { space: 'cosine' } } });
  rows = makeRows();
  await collection.add({
    ids: rows.map((r) => r.id),
    embeddings: rows.map((_, i) => [1, (i % 7) / 7, (i % 3) / 3]),
    documents: rows.map((r) => r.text),
    metadatas: rows.map((r) => r.metadata),
  });
  const back = await collection.get({ ids: rows.map((r) => r.id), include: ['metadatas', 'documents'] as never });
  const byId = new Map(back.ids.map((id, i) => [id, back.metadatas[i] as Record<string, unknown> | null]));
  column = MetadataColumn.from(rows.map((r) => byId.get(r.id)));
  const textOf = new Map(back.ids.map((id, i) => [id, back.documents[i] ?? '']));
  documents = new TextColumn(encodeTextColumn(rows.map((r) => textOf.get(r.id)!), { rows: 16, bytes: 200 }));
});
afterAll(async () => {
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The ids Chroma returns, or 'rejected' when it refuses the filter as invalid. */
async function chromaIds(w: WhereFilter | undefined, d: WhereDocument | undefined): Promise<string[] | 'rejected'> {
  try {
    const res = await collection.get({ ...(w ? { where: w as never } : {}), ...(d ? { whereDocument: d as never } : {}), limit: N + 10 });
    return [...res.ids].sort();
  } catch (err) {
    if (/Bad request|Expected|Invalid|invalid/i.test((err as Error).message)) return 'rejected';
    throw err;
  }
}
function localIds(w: WhereFilter | undefined, d: WhereDocument | undefined): string[] | 'rejected' {
  try {
    const pw = compileWhere(w);
    const pd = compileWhereDocument(d);
    const fromObjects = rows.filter((r) => pw(r.metadata) && pd(r.text)).map((r) => r.id).sort();
    const byRow = compileRowFilter<number>(w, d, (field) => column.field(field), documents.documentReader());
    const fromColumn = rows.filter((_, r) => !byRow || byRow(r)).map((r) => r.id).sort();
    expect(fromColumn, `the columns disagree with the objects on ${JSON.stringify({ w, d })}`).toEqual(fromObjects);
    return fromObjects;
  } catch (err) {
    if ((err as { code?: string }).code === 'RAG_STORE_FILTER_INVALID') return 'rejected';
    throw err;
  }
}

describe('where / whereDocument filters in process match the real Chroma server', () => {
  it('agree on hand-picked edge cases (types, missing fields, $ne/$nin on absent fields)', async () => {
    const cases: WhereFilter[] = [
      { mixed: 1 }, { mixed: true }, { mixed: '1' }, { mixed: { $ne: 1 } }, { absent: { $ne: 1 } }, { absent: { $nin: ['a'] } },
      { f: { $gte: 1 } }, { f: 1 }, { n: { $in: [1, true, '1'] } }, { s: { $gt: 0 } }, { b: { $eq: false } },
      { $and: [{ n: { $gte: 0 } }, { n: { $lt: 3 } }] }, { $or: [{ s: 'a' }, { b: true }] },
      { f: { $eq: 1.25 } }, { n: { $lt: 0.5 } }, { n: { $gte: -1.5 } }, { n: { $in: [1, 2.5] } }, { n: { $nin: [2.5, 1] } }, { n: { $in: [1, 'x'] } },
      { n: { $gt: true } }, { n: { $in: [] } },
    ];
    const rejected = [];
    for (const w of cases) {
      const local = localIds(w, undefined);
      if (local === 'rejected') rejected.push(w);
      expect(local, JSON.stringify(w)).toEqual(await chromaIds(w, undefined));
    }
    expect(rejected.length).toBe(5);
    for (const d of [{ $regex: 'a(?=b)' }, { $regex: '(a)\\1' }, { $contains: '' }, { $regex: '(' }]) {
      expect(localIds(undefined, d), JSON.stringify(d)).toEqual(await chromaIds(undefined, d));
    }
  });

  it('agree on 300 random where filters and 150 random whereDocument filters (fixed seed)', async () => {
    await fc.assert(
      fc.asyncProperty(where, async (w) => {
        expect(localIds(w, undefined), JSON.stringify(w)).toEqual(await chromaIds(w, undefined));
      }),
      { seed: 1313, numRuns: 300, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(whereDocument, fc.option(where, { freq: 3 }), async (d, w) => {
        const ww = w ?? undefined;
        expect(localIds(ww, d), JSON.stringify({ w: ww, d })).toEqual(await chromaIds(ww, d));
      }),
      { seed: 1314, numRuns: 150, endOnFailure: true },
    );
  });
});
