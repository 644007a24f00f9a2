/**
 * `node dist/bench/metadata-filter.js [--rows 100000]`: one where filter over every row, evaluated
 * over metadata objects (what generations held until session 14) and over a metadata column
 * (metadata-columns.ts, what they hold now); median of 15 of each, same rows matched. Fields like
 * the bench stores' (a source shared by many rows, a number) and a title with ~1,000 values.
 * Then whereDocument filters over ~300-character documents: over one string per row (as
 * joined-string columns sliced them until session 15) and over the UTF-8 text column
 * (record-columns.ts: `$contains` searches its bytes once, `$regex` decodes each row).
 */
import { parseArgs } from 'node:util';
import { MetadataColumn } from '../src/store/metadata-columns.js';
import { TextColumn } from '../src/store/record-columns.js';
import { compileRowFilter, compileWhere, compileWhereDocument, type WhereDocument, type WhereFilter } from '../src/store/where-filter.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '100000' } } });
const N = Number(values.rows);
const metas = Array.from({ length: N }, (_, i) => ({ source: `ed/doc-${i % 50}.md`, chunk: i, edition: 'a', title: `Title ${i % 977}` }));
const column = MetadataColumn.from(metas);
const filters: WhereFilter[] = [
  { source: 'ed/doc-7.md' },
  { chunk: { $gte: N / 2 } },
  { $and: [{ edition: 'a' }, { source: { $in: ['ed/doc-1.md', 'ed/doc-2.md'] } }] },
  { title: { $ne: 'Title 5' } },
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** Rows of N that pass a filter (compiling it is part of the time, as in a query). */
function count(compile: () => (r: number) => boolean): number {
  const pass = compile();
  let n = 0;
  for (let r = 0; r < N; r++) if (pass(r)) n++;
  return n;
}
/** Median ms of 15 runs of each way of evaluating one filter; both must pass the same number of rows. */
function compare(label: string, ways: Record<'a' | 'b', () => (r: number) => boolean>): { a: number; b: number; rows: number } {
  const times = { a: [] as number[], b: [] as number[] };
  let rows = 0;
  for (let rep = 0; rep < 15; rep++) {
    const counts = (['a', 'b'] as const).map((k) => {
      const t = performance.now();
      const n = count(ways[k]);
      times[k].push(performance.now() - t);
      return n;
    });
    if (counts[0] !== counts[1]) throw new Error(`${label}: ${counts[0]} rows one way, ${counts[1]} the other`);
    rows = counts[0]!;
  }
  return { a: median(times.a), b: median(times.b), rows };
}

console.log(`| filter (${N} rows) | objects ms | column ms |\n| --- | --- | --- |`);
for (const where of filters) {
  const m = compare(JSON.stringify(where), {
    a: () => {
      const byObject = compileWhere(where);
      return (r) => byObject(metas[r]);
    },
    b: () => compileRowFilter<number>(where, undefined, (field) => column.field(field), () => '')!,
  });
  console.log(`| \`${JSON.stringify(where)}\` | ${m.a.toFixed(2)} | ${m.b.toFixed(2)} |`);
}

const WORDS = 'the lighthouse keeper trims a wick each night while ships pass the harbor café naïve résumé'.split(' ');
const docs = Array.from({ length: N }, (_, i) => Array.from({ length: 50 }, (_, j) => WORDS[(i * 7 + j * 13 + (i >> 3)) % WORDS.length]).join(' ') + ` record ${i}`);
const texts = TextColumn.from(docs);
const docFilters: WhereDocument[] = [{ $contains: 'lighthouse keeper' }, { $contains: 'record 4242' }, { $contains: 'café naïve' }, { $not_contains: 'wick' }, { $regex: 'record 4[0-9]{3}$' }];
console.log(`\n| whereDocument (${N} rows, ~300 characters each) | strings ms | byte column ms | rows |\n| --- | --- | --- | --- |`);
for (const d of docFilters) {
  const m = compare(JSON.stringify(d), {
    a: () => {
      const byText = compileWhereDocument(d);
      return (r) => byText(docs[r]);
    },
    b: () => compileRowFilter<number>(undefined, d, () => () => undefined, texts.documentReader())!,
  });
  console.log(`| \`${JSON.stringify(d)}\` | ${m.a.toFixed(2)} | ${m.b.toFixed(2)} | ${m.rows} |`);
}
