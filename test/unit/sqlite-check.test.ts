import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RagError } from '../../src/errors.js';
import { checkSqliteFile } from '../../src/store/sqlite-check.js';

/**
 * The structural SQLite check on real files in a temp dir. Each file is a database image built
 * from the format's header fields (https://www.sqlite.org/fileformat.html, "The Database Header").
 */
interface Image {
  pageSize?: number;
  /** The raw 2-byte page-size field (1 means 65536); overrides pageSize in the header only. */
  rawPageSize?: number;
  pages?: number;
  /** Header page count; defaults to `pages`. */
  headerPages?: number;
  /** Change counter and "version-valid-for": the header page count is trusted only when they are equal. */
  changeCounter?: number;
  validFor?: number;
  magic?: string;
  /** Cut the file to this many bytes. */
  truncateTo?: number;
}

function image(o: Image = {}): Buffer {
  const pageSize = o.pageSize ?? 4096;
  const pages = o.pages ?? 2;
  const buf = Buffer.alloc(pageSize * pages);
  buf.write(o.magic ?? 'SQLite format 3\u0000', 0, 'latin1');
  buf.writeUInt16BE(o.rawPageSize ?? (pageSize === 65536 ? 1 : pageSize), 16);
  buf[18] = 1;
  buf[19] = 1;
  buf[21] = 64;
  buf[22] = 32;
  buf[23] = 32;
  buf.writeUInt32BE(o.changeCounter ?? 7, 24);
  buf.writeUInt32BE(o.headerPages ?? pages, 28);
  buf.writeUInt32BE(o.validFor ?? o.changeCounter ?? 7, 92);
  buf.writeUInt32BE(3_046_000, 96);
  return o.truncateTo === undefined ? buf : buf.subarray(0, o.truncateTo);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rag-sqlite-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
async function check(content: Buffer): Promise<string | null> {
  const path = join(dir, `db-${n++}.sqlite3`);
  await writeFile(path, content);
  try {
    await checkSqliteFile(path);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(RagError);
    return `${(err as RagError).code}: ${(err as RagError).message}`;
  }
}

const ACCEPTED: Array<[name: string, img: Image]> = [
  ['two 4096-byte pages', {}],
  ['one 512-byte page (the smallest page size)', { pageSize: 512, pages: 1 }],
  ['65536-byte pages (stored as 1)', { pageSize: 65536, pages: 1 }],
  ['a file longer than the header says (pages appended since)', { pages: 3, headerPages: 2 }],
  ['a stale header page count (change counter != version-valid-for) is not trusted', { pages: 2, headerPages: 9, changeCounter: 8, validFor: 7 }],
  ['a zero header page count (old writers) is not trusted', { pages: 1, headerPages: 0 }],
];

const REJECTED: Array<[name: string, content: () => Buffer, want: string]> = [
  ['an empty file', () => Buffer.alloc(0), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is empty (0 bytes)'],
  ['a file shorter than the header', () => image().subarray(0, 99), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is not a SQLite database (bad header)'],
  ['another format', () => image({ magic: 'SQLite format 2\u0000' }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is not a SQLite database (bad header)'],
  ['text', () => Buffer.from('x'.repeat(4096)), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is not a SQLite database (bad header)'],
  ['a page size that is not a power of two', () => image({ pageSize: 4096, rawPageSize: 3000 }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 has an invalid page size (3000)'],
  ['a page size below 512', () => image({ pageSize: 4096, rawPageSize: 256 }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 has an invalid page size (256)'],
  ['a page size of 0', () => image({ pageSize: 4096, rawPageSize: 0 }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 has an invalid page size (0)'],
  ['a cut inside a page', () => image({ pages: 2, truncateTo: 4096 + 100 }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is truncated (4196 bytes is not a whole number of 4096-byte pages)'],
  ['whole pages missing, by the trusted header count', () => image({ pages: 3, truncateTo: 4096 * 2 }), 'RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is truncated (8192 bytes, the header says 12288)'],
];

describe('SQLite header check', () => {
  it.each(ACCEPTED)('accepts %s', async (_name, img) => {
    expect(await check(image(img))).toBeNull();
  });

  it.each(REJECTED)('rejects %s', async (_name, content, want) => {
    expect(await check(content())).toBe(want);
  });

  it('a missing file is RAG_STORE_FILE_MISSING, named by its label', async () => {
    const err = await checkSqliteFile(join(dir, 'nope.sqlite3'), 'v1/chroma.sqlite3').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RagError);
    expect((err as RagError).code).toBe('RAG_STORE_FILE_MISSING');
    expect((err as RagError).message).toBe('v1/chroma.sqlite3 is missing or unreadable');
  });

  it('a dangling link is missing too', async () => {
    const link = join(dir, 'dangling.sqlite3');
    await symlink(join(dir, 'gone'), link);
    expect(((await checkSqliteFile(link).catch((e: unknown) => e)) as RagError).code).toBe('RAG_STORE_FILE_MISSING');
  });

  it('a folder or a FIFO in its place is refused without blocking', async () => {
    const sub = join(dir, 'a-folder.sqlite3');
    await mkdir(sub);
    expect(await checkSqliteFile(sub).catch((e: unknown) => `${(e as RagError).code}: ${(e as Error).message}`)).toBe('RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is not a regular file');
    const fifo = join(dir, 'fifo.sqlite3');
    execFileSync('mkfifo', [fifo]);
    expect(await checkSqliteFile(fifo).catch((e: unknown) => `${(e as RagError).code}: ${(e as Error).message}`)).toBe('RAG_STORE_SQLITE_CORRUPT: chroma.sqlite3 is not a regular file');
  });
});
