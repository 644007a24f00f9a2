import type { Request, Response, Router } from 'express';
import { RagError, toRagError } from '../errors.js';
import type { ChangeProgress, DocumentChange } from '../ingest/document-changes.js';
import { leaseFor, type AppDeps } from './context.js';
import { createRouter } from './router.js';
import { openEventStream, wantsEventStream } from './sse.js';

/**
 * Documents from the browser (behind the admin key, in the /admin router):
 *   GET    /admin/documents                  the served version's documents, and whether changes can be published
 *   POST   /admin/documents?name=<file>      body: the file's bytes; adds (or replaces) that document
 *   DELETE /admin/documents?source=<name>    removes a document
 * A change publishes a new store version (src/ingest/document-changes.ts) and reloads; with
 * `Accept: text/event-stream` its progress streams as events (`progress`, then `done` or `error`),
 * otherwise the answer is one JSON body at the end. Refusals (name, type, size, read-only store, a
 * change already running) are answered before any streaming, with their status and code.
 */
/**
 * The ingest pipeline (LangChain loaders and splitters, ~0.4 s to import) is loaded by the first
 * documents request, not by every start of the service.
 */
let ingestModule: Promise<typeof import('../ingest/document-changes.js')> | undefined;
const loadIngest = () => (ingestModule ??= import('../ingest/document-changes.js'));

export function documentRoutes(deps: AppDeps): Router {
  const r = createRouter();
  const maxBytes = deps.config.docsUploadMaxMb * 2 ** 20;
  let running: string | null = null;

  r.get('/documents', async (req, res) => {
    const gen = leaseFor(deps, req, res);
    const { checkWritable, listDocuments, UPLOAD_TYPES } = await loadIngest();
    const documents = await listDocuments(gen);
    const writable = await checkWritable(deps.config.vectorstoreDir, gen).then(
      () => ({ ok: true as const }),
      (e: unknown) => ({ ok: false as const, ...toRagError(e).toJSON() }),
    );
    res.json({ storeVersion: gen.store.version, generation: gen.id, writable, busy: running, maxUploadBytes: maxBytes, types: Object.keys(UPLOAD_TYPES), documents });
  });

  /** Run one change: lease the served generation, publish, reload; stream or answer JSON. */
  const change = async (req: Request, res: Response, describe: string, prepare: () => Promise<DocumentChange>) => {
    if (running) throw new RagError('RAG_DOCS_BUSY', `another document change is being published (${running}); try again when it is done`);
    running = describe;
    try {
      const gen = leaseFor(deps, req, res);
      const { checkWritable, publishChange } = await loadIngest();
      await checkWritable(deps.config.vectorstoreDir, gen);
      const c = await prepare();
      const stream = wantsEventStream(req) ? openEventStream(req, res) : null;
      const progress = (p: ChangeProgress) => stream?.send('progress', p);
      try {
        const result = await publishChange({ gen, change: c, vectorstoreDir: deps.config.vectorstoreDir, keepVersions: deps.config.keepVersions, logger: deps.logger, onProgress: progress });
        deps.logger.info({ change: describe, ...result }, 'document change published');
        // The watcher sees the new version too; this waits for the reload so the answer can say how it went.
        let attempt = await deps.manager.reload(`documents:${c.kind}`);
        // The watcher may have started the reload of the new version first: then this one finds the
        // folders as served ('unchanged'), and the watcher's attempt is the one that says how it went.
        if (attempt?.outcome === 'unchanged') attempt = deps.manager.attemptFor(result.version) ?? attempt;
        const body = { change: c.kind, ...result, attempt, active: deps.manager.current?.info() ?? null };
        if (stream) {
          stream.send('done', body);
          stream.end();
        } else res.status(attempt?.outcome === 'rejected' ? 422 : 200).json(body);
      } catch (err) {
        if (!stream) throw err;
        const e = toRagError(err, 'RAG_INGEST_FAILED');
        deps.logger.warn({ code: e.code, err: e.message, change: describe }, 'document change failed');
        stream.send('error', { error: e.toJSON() });
        stream.end();
      }
    } finally {
      running = null;
    }
  };

  r.post('/documents', async (req, res) => {
    const { checkDocumentName, extractTextIsolated } = await loadIngest();
    const { name, ext } = checkDocumentName(req.query.name);
    await change(req, res, `upload ${name}`, async () => {
      const bytes = await readBody(req, res, maxBytes);
      return { kind: 'upload', document: await extractTextIsolated(name, ext, bytes) };
    });
  });

  r.delete('/documents', async (req, res) => {
    const source = req.query.source;
    if (typeof source !== 'string' || !source) throw new RagError('RAG_DOCS_BAD_NAME', 'give the document as ?source=<name> (the name GET /admin/documents lists)');
    await change(req, res, `delete ${source}`, async () => ({ kind: 'delete', source }));
  });

  return r;
}

/**
 * The request body, at most `max` bytes: a larger Content-Length is refused before reading, a
 * body that grows past it is cut off. Either way the connection closes after the 413, so the
 * rest of an oversized upload is never read.
 */
function readBody(req: Request, res: Response, max: number): Promise<Uint8Array> {
  const tooLarge = () => {
    res.setHeader('Connection', 'close');
    res.once('finish', () => req.socket.destroySoon());
    return new RagError('RAG_DOCS_TOO_LARGE', `the document is larger than ${Math.round((max / 2 ** 20) * 10) / 10} MiB (DOCS_UPLOAD_MAX_MB)`);
  };
  const declared = Number(req.get('content-length') ?? NaN);
  if (Number.isFinite(declared) && declared > max) return Promise.reject(tooLarge());
  if (req.get('content-encoding') && req.get('content-encoding') !== 'identity') {
    return Promise.reject(new RagError('RAG_HTTP_UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${req.get('content-encoding')} is not accepted for uploads; send the file as it is`));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (b: Buffer) => {
      size += b.length;
      if (size > max) {
        cleanup();
        req.pause();
        reject(tooLarge());
        return;
      }
      parts.push(b);
    };
    const onEnd = () => {
      cleanup();
      if (size === 0) reject(new RagError('RAG_DOCS_NO_TEXT', 'the upload is empty'));
      else resolve(new Uint8Array(Buffer.concat(parts, size)));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new RagError('RAG_HTTP_BAD_REQUEST', `the upload was interrupted: ${err.message}`, { cause: err }));
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
