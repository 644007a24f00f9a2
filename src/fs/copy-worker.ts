/**
 * The file-copy thread (copy-thread.ts is its only user): copies an opened file into another (or,
 * with no destination, only hashes it), hashing the bytes it reads, with blocking reads and writes, so a snapshot costs the event loop
 * neither the hashing nor a round trip per block. Holes stay holes: only 64 KiB blocks holding a
 * non-zero byte are written (runs of them in one write). The source is read in order from its
 * descriptor's position (a fresh descriptor: from the start). It lowers its own priority first
 * (thread-nice.ts): copying yields CPU to the threads serving requests.
 */
import { createHash } from 'node:crypto';
import { ftruncateSync, readSync, writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { threadPort } from '../niced-thread.js';
import { niceCurrentThread } from '../store/thread-nice.js';

export interface CopyRequest {
  id: number;
  /** File descriptors opened by the event loop (checked there: a regular file inside its root; a new private file). */
  src: number;
  /** -1: only hash `src` (a file checked in place, not copied). */
  dst: number;
  /** Shared flag: set to 1 to stop the copy at the next block. */
  abort: Int32Array;
}

export type CopyReply =
  | { id: number; sha256: string; size: number }
  | { id: number; aborted: true }
  | { id: number; error: { side: 'read' | 'write'; code: string | null; message: string } };

const CHUNK = 1 << 20;
const SPARSE_BLOCK = 64 << 10;
const ZEROS = Buffer.alloc(SPARSE_BLOCK);

const port = threadPort(workerData);
const { nice } = workerData as { nice: number };
if (nice) niceCurrentThread(nice);
const buf = Buffer.allocUnsafe(CHUNK);

class SideError extends Error {
  constructor(
    readonly side: 'read' | 'write',
    cause: unknown,
  ) {
    super((cause as Error).message, { cause });
  }
}

function copy(req: CopyRequest): CopyReply {
  const hash = createHash('sha256');
  let pos = 0;
  for (;;) {
    if (Atomics.load(req.abort, 0) !== 0) return { id: req.id, aborted: true };
    let n: number;
    try {
      n = readSync(req.src, buf, 0, CHUNK, null);
    } catch (err) {
      throw new SideError('read', err);
    }
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    if (req.dst < 0) {
      pos += n;
      continue;
    }
    // Runs of non-zero blocks, each written in one call.
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart < 0) return;
      try {
        let w = 0;
        while (w < end - runStart) w += writeSync(req.dst, buf, runStart + w, end - runStart - w, pos + runStart + w);
      } catch (err) {
        throw new SideError('write', err);
      }
      runStart = -1;
    };
    for (let off = 0; off < n; off += SPARSE_BLOCK) {
      const end = Math.min(off + SPARSE_BLOCK, n);
      const zero = buf.subarray(off, end).equals(ZEROS.subarray(0, end - off));
      if (zero) flush(off);
      else if (runStart < 0) runStart = off;
    }
    flush(n);
    pos += n;
  }
  try {
    if (req.dst >= 0) ftruncateSync(req.dst, pos);
  } catch (err) {
    throw new SideError('write', err);
  }
  return { id: req.id, sha256: hash.digest('hex'), size: pos };
}

port.on('message', (req: CopyRequest) => {
  let reply: CopyReply;
  try {
    reply = copy(req);
  } catch (err) {
    const side = err instanceof SideError ? err.side : 'read';
    const cause = err instanceof SideError ? err.cause : err;
    reply = { id: req.id, error: { side, code: (cause as NodeJS.ErrnoException).code ?? null, message: (cause as Error).message } };
  }
  port.postMessage(reply);
});
