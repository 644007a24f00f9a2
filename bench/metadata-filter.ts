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
console.log(`| filter (${N} rows) | objects ms | column ms |\n| --- | --- | --- |`);
for (const where of filters) {
  const times = { objects: [] as number[], column: [] as number[] };
  for (let rep = 0; rep < 15; rep++) {
    let t = performance.now();
    const byObject = compileWhere(where);
    let a = 0;
    for (let r = 0; r < N; r++) if (byObject(metas[r])) a++;
    times.objects.push(performance.now() - t);
    t = performance.now();
    const byRow = compileRowFilter<number>(where, undefined, (field) => column.field(field), () => '')!;
    let b = 0;
    for (let r = 0; r < N; r++) if (byRow(r)) b++;
    times.column.push(performance.now() - t);
    if (a !== b) throw new Error(`${JSON.stringify(where)}: ${a} rows over objects, ${b} over the column`);
  }
  console.log(`| \`${JSON.stringify(where)}\` | ${median(times.objects).toFixed(2)} | ${median(times.column).toFixed(2)} |`);
}

const WORDS = 'the lighthouse keeper trims a wick each night while ships pass the harbor café naïve résumé'.split(' ');
const docs = Array.from({ length: N }, (_, i) => Array.from({ length: 50 }, (_, j) => WORDS[(i * 7 + j * 13 + (i >> 3)) % WORDS.length]).join(' ') + ` record ${i}`);
const texts = TextColumn.from(docs);
const docFilters: WhereDocument[] = [{ $contains: 'lighthouse keeper' }, { $contains: 'record 4242' }, { $contains: 'café naïve' }, { $not_contains: 'wick' }, { $regex: 'record 4[0-9]{3}$' }];
console.log(`\n| whereDocument (${N} rows, ~300 characters each) | strings ms | byte column ms | rows |\n| --- | --- | --- | --- |`);
for (const d of docFilters) {
  const times = { strings: [] as number[], bytes: [] as number[] };
  let rows = 0;
  for (let rep = 0; rep < 15; rep++) {
    let t = performance.now();
    const byText = compileWhereDocument(d);
    let a = 0;
    for (let r = 0; r < N; r++) if (byText(docs[r])) a++;
    times.strings.push(performance.now() - t);
    t = performance.now();
    const byRow = compileRowFilter<number>(undefined, d, () => () => undefined, {
      text: (r) => texts.get(r),
      contains: (needle) => {
        const has = texts.containing(needle);
        return (r) => has[r] === 1;
      },
    })!;
    let b = 0;
    for (let r = 0; r < N; r++) if (byRow(r)) b++;
    times.bytes.push(performance.now() - t);
    if (a !== b) throw new Error(`${JSON.stringify(d)}: ${a} rows over strings, ${b} over the byte column`);
    rows = a;
  }
  console.log(`| \`${JSON.stringify(d)}\` | ${median(times.strings).toFixed(2)} | ${median(times.bytes).toFixed(2)} | ${rows} |`);
}
