/**
 * The one error catalog. Every error the service raises on purpose is a RagError with a
 * stable code (RAG_<AREA>_<WHAT>), the HTTP status it maps to, and the original cause.
 */
export const ErrorCodes = {
  // config
  RAG_CONFIG_INVALID: 500,
  // audit log (start-up)
  RAG_AUDIT_DIR_IN_USE: 500,
  RAG_AUDIT_DIR_UNUSABLE: 500,
  // http / bad input
  RAG_HTTP_BAD_JSON: 400,
  RAG_HTTP_BAD_REQUEST: 400,
  RAG_HTTP_BAD_ENCODING: 400,
  RAG_HTTP_TOO_DEEP: 400,
  RAG_HTTP_INVALID_UNICODE: 400,
  RAG_HTTP_HEADERS_TOO_LARGE: 431,
  RAG_HTTP_VALIDATION: 400,
  RAG_HTTP_NOT_FOUND: 404,
  RAG_HTTP_METHOD_NOT_ALLOWED: 405,
  RAG_HTTP_UNSUPPORTED_MEDIA_TYPE: 415,
  RAG_HTTP_BODY_TOO_LARGE: 413,
  RAG_HTTP_UNAUTHORIZED: 401,
  RAG_HTTP_FORBIDDEN: 403,
  RAG_HTTP_TOO_MANY_REQUESTS: 429,
  RAG_HTTP_TIMEOUT: 503,
  RAG_HTTP_UNKNOWN_MODEL: 404,
  RAG_HTTP_UNSUPPORTED_PARAMETER: 400,
  // service lifecycle
  RAG_NOT_READY: 503,
  RAG_SHUTTING_DOWN: 503,
  // embeddings / model folder
  RAG_MODEL_NOT_FOUND: 503,
  RAG_MODEL_FILE_MISSING: 503,
  RAG_MODEL_FILE_INVALID: 503,
  RAG_MODEL_LOAD_FAILED: 503,
  RAG_MODEL_OUTPUT_INVALID: 503,
  RAG_MODEL_WRITE_IN_PROGRESS: 503,
  // store
  RAG_STORE_NOT_FOUND: 503,
  RAG_STORE_FILE_MISSING: 503,
  RAG_STORE_MANIFEST_INVALID: 503,
  RAG_STORE_CHECKSUM_MISMATCH: 503,
  RAG_STORE_SQLITE_CORRUPT: 503,
  RAG_STORE_COLLECTION_MISSING: 503,
  RAG_STORE_EMPTY: 503,
  RAG_STORE_DIMENSION_MISMATCH: 503,
  RAG_STORE_QUERY_FAILED: 503,
  RAG_STORE_UNAVAILABLE: 503,
  RAG_STORE_PROBE_FAILED: 503,
  RAG_STORE_WRITE_IN_PROGRESS: 503,
  RAG_STORE_HNSW_CORRUPT: 503,
  RAG_STORE_KEYWORD_INDEX_CORRUPT: 503,
  RAG_STORE_FILTER_INVALID: 400,
  RAG_STORE_INDEX_LOAD_FAILED: 503,
  RAG_STORE_INDEX_CACHE_INVALID: 503,
  RAG_CHROMA_START_FAILED: 503,
  RAG_CHROMA_PORT_IN_USE: 503,
  RAG_CHROMA_GLIBC_MISSING: 503,
  RAG_STORE_LAYOUT_AMBIGUOUS: 503,
  RAG_STORE_PUBLISHED_MODIFIED: 503,
  RAG_STORE_TIMEOUT: 503,
  RAG_STORE_UNHEALTHY: 503,
  RAG_STORE_ACCEPTANCE_FAILED: 503,
  RAG_STORE_ACCEPTANCE_INVALID: 503,
  // files in watched folders (untrusted input)
  RAG_FS_NOT_FOUND: 503,
  RAG_FS_SPECIAL_FILE: 503,
  RAG_FS_LINK_LOOP: 503,
  RAG_FS_LINK_OUTSIDE_ROOT: 503,
  RAG_FS_LINK_BROKEN: 503,
  RAG_FS_UNREADABLE: 503,
  RAG_FS_TOO_LARGE: 503,
  RAG_FS_TOO_MANY_ENTRIES: 503,
  RAG_WATCH_ERROR: 503,
  // the runtime folder the service writes snapshots to
  RAG_RUNTIME_NO_SPACE: 503,
  RAG_RUNTIME_NOT_WRITABLE: 503,
  // shared Chroma (versioned collections behind a pointer)
  RAG_SHARED_INVALID_NAME: 400,
  RAG_SHARED_VERSION_MISSING: 503,
  RAG_SHARED_VERSION_INCOMPLETE: 503,
  RAG_SHARED_NO_POINTER: 503,
  RAG_SHARED_ACCEPTANCE_MISSING: 503,
  RAG_SHARED_ACCEPTANCE_MISMATCH: 503,
  // reload
  RAG_RELOAD_SUPERSEDED: 409,
  RAG_RELOAD_NO_PREVIOUS: 409,
  RAG_RELOAD_FAILED: 500,
  RAG_RELOAD_TIMEOUT: 503,
  RAG_RELOAD_CANCELLED: 503,
  RAG_RELOAD_ILLEGAL_TRANSITION: 500,
  // answer / upstream llm
  RAG_LLM_UPSTREAM_FAILED: 502,
  RAG_LLM_UPSTREAM_TIMEOUT: 504,
  // ingest
  RAG_INGEST_NO_DOCUMENTS: 400,
  RAG_INGEST_FAILED: 500,
  RAG_INGEST_ACCEPTANCE_INVALID: 400,
  // documents from the browser (/admin/documents)
  RAG_DOCS_READ_ONLY: 409,
  RAG_DOCS_UNAVAILABLE: 409,
  RAG_DOCS_BUSY: 409,
  RAG_DOCS_BAD_NAME: 400,
  RAG_DOCS_UNSUPPORTED_TYPE: 415,
  RAG_DOCS_TYPE_MISMATCH: 415,
  RAG_DOCS_TOO_LARGE: 413,
  RAG_DOCS_NO_TEXT: 422,
  RAG_DOCS_NOT_FOUND: 404,
  RAG_DOCS_LAST_DOCUMENT: 409,
  // generic
  RAG_INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface RagErrorOptions {
  cause?: unknown;
  /** Extra structured facts for logs and the status endpoint (never secrets). */
  details?: Record<string, unknown>;
  /** Override the catalog status (rare: e.g. a store error that is the client's fault). */
  status?: number;
}

export class RagError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: RagErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RagError';
    this.code = code;
    this.status = options.status ?? ErrorCodes[code];
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

export function isRagError(err: unknown): err is RagError {
  return err instanceof RagError;
}

/** Wrap anything thrown into a RagError, keeping it as the cause. */
export function toRagError(err: unknown, fallback: ErrorCode = 'RAG_INTERNAL', message?: string): RagError {
  if (err instanceof RagError) return err;
  const text = message ?? (err instanceof Error ? err.message : String(err));
  return new RagError(fallback, text, { cause: err });
}
