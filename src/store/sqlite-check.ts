import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { RagError } from '../errors.js';

/**
 * Structural check of a SQLite file without a SQLite library (Node 20 has no node:sqlite):
 * the header magic, a valid page size, and a file length that holds every page the header
 * claims. It catches empty and truncated copies, which make Chroma start on an empty database
 * (0 bytes) or abort with "database disk image is malformed" (truncated).
 */
export async function checkSqliteFile(path: string, label = 'chroma.sqlite3'): Promise<void> {
  let fh;
  try {
    // O_NONBLOCK: a FIFO in its place must not block a libuv thread waiting for a writer.
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    throw new RagError('RAG_STORE_FILE_MISSING', `${label} is missing or unreadable`, { cause, details: { file: label } });
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} is not a regular file`, { details: { file: label } });
    const { size } = st;
    if (size === 0) throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} is empty (0 bytes)`, { details: { file: label } });
    const header = Buffer.alloc(100);
    const { bytesRead } = await fh.read(header, 0, 100, 0);
    if (bytesRead < 100 || header.toString('latin1', 0, 16) !== 'SQLite format 3\u0000') {
      throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} is not a SQLite database (bad header)`, { details: { file: label } });
    }
    const raw = header.readUInt16BE(16);
    const pageSize = raw === 1 ? 65536 : raw;
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} has an invalid page size (${raw})`, { details: { file: label } });
    }
    if (size % pageSize !== 0) {
      throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} is truncated (${size} bytes is not a whole number of ${pageSize}-byte pages)`, {
        details: { file: label },
      });
    }
    // The in-header page count is valid when the change counter equals "version-valid-for".
    const pages = header.readUInt32BE(28);
    if (pages > 0 && header.readUInt32BE(24) === header.readUInt32BE(92) && size < pages * pageSize) {
      throw new RagError('RAG_STORE_SQLITE_CORRUPT', `${label} is truncated (${size} bytes, the header says ${pages * pageSize})`, {
        details: { file: label },
      });
    }
  } finally {
    await fh.close();
  }
}
