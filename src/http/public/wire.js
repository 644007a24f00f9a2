// @ts-check
// The service's JSON as the console reads it: types only, nothing here runs, and no module imports
// this file at run time (only `@import` tags name it, so the browser never fetches it). The shapes
// follow the server's: ReloadAttempt, ReloadEvent and the status in src/reload/reload-manager.ts,
// GenerationInfo in src/reload/generation.ts, /readyz in src/http/routes-health.ts, the chat
// completion (and its chunks) in src/http/routes-openai.ts, Source in src/rag/retriever.ts.
// Only the fields the console uses are listed; it still reads them defensively.

/** @typedef {{ code: string, message: string }} ErrorInfo */

/**
 * A body the API answers with on an error: `{ error: { code, message } }`.
 * @typedef {{ error?: Partial<ErrorInfo> }} ErrorBody
 */

/** @typedef {{ id: string, text: string, score: number, metadata: Record<string, string | number | boolean | null> }} Source */

/**
 * The generation that answered a request.
 * @typedef {{ id: string, storeVersion: string, model: string }} GenerationRef
 */

/**
 * @typedef {object} GenerationInfo
 * @property {string} id
 * @property {{ name: string, id: string, dimension: number, loadedAt: string }} model
 * @property {{ version: string, collection: string, count: number }} store
 */

/** @typedef {'accepted' | 'rejected' | 'superseded' | 'unchanged' | 'rolled_back'} ReloadOutcome */

/**
 * @typedef {object} ReloadAttempt
 * @property {number} id
 * @property {string} trigger
 * @property {string} startedAt
 * @property {number} durationMs
 * @property {ReloadOutcome} outcome
 * @property {string | null} storeVersion
 * @property {string | null} model
 * @property {ErrorInfo | null} error
 */

/** @typedef {{ storeVersion: string | null, model: string }} PreviousSpec */

/**
 * GET /admin/status, and the `status` event that opens GET /admin/events.
 * @typedef {object} AdminStatus
 * @property {GenerationInfo | null} active
 * @property {PreviousSpec | null} previous
 * @property {boolean} reloading
 * @property {ReloadAttempt | null} lastError
 * @property {ReloadAttempt[]} history
 * @property {string} [answerer] absent from the events stream's `status`
 * @property {boolean} [draining] absent from the events stream's `status`
 */

/**
 * GET /readyz: open to anyone, so the fallback when /admin/status needs a key.
 * @typedef {object} Readyz
 * @property {'ready' | 'draining' | 'starting'} status
 * @property {string | null} generation
 * @property {{ name: string, id: string, dimension: number } | null} model
 * @property {{ version: string, collection: string, count: number } | null} store
 * @property {string} answerer
 * @property {ErrorInfo | null} lastError
 */

/**
 * @typedef {'reload.started' | 'reload.accepted' | 'reload.rejected' | 'reload.superseded' | 'reload.unchanged'
 *   | 'reload.rolled_back' | 'generation.retired' | 'chroma.restarted'} ReloadEventName
 */

/**
 * One reload event from GET /admin/events (its SSE `event:` field is `type`).
 * @typedef {object} ReloadEvent
 * @property {string} at ISO time
 * @property {ReloadAttempt} [attempt]
 * @property {GenerationInfo} [generation]
 */

/**
 * POST /admin/reload and POST /admin/rollback (200, or 422 when the attempt was rejected).
 * @typedef {{ attempt?: ReloadAttempt, active: GenerationInfo | null }} AdminActionResult
 */

/**
 * POST /v1/chat/completions with `stream: false`.
 * @typedef {object} ChatCompletion
 * @property {Array<{ message?: { content?: string } }>} [choices]
 * @property {Source[]} [sources]
 * @property {GenerationRef} [generation]
 */

/**
 * One `data:` chunk of POST /v1/chat/completions with `stream: true` (the last is `[DONE]`).
 * @typedef {object} ChatChunk
 * @property {Array<{ delta?: { content?: string } }>} [choices]
 * @property {Source[]} [sources]
 * @property {GenerationRef} [generation]
 * @property {Partial<ErrorInfo>} [error] the stream failed after its headers were sent
 */

export {};

/**
 * GET /admin/documents (src/http/routes-documents.ts): the served version's documents.
 * @typedef {object} DocumentsList
 * @property {string} storeVersion
 * @property {{ ok: boolean, code?: string, message?: string }} writable
 * @property {string | null} busy a change being published, if any
 * @property {number} maxUploadBytes
 * @property {string[]} types accepted extensions
 * @property {Array<{ source: string, title: string, type: string, chunks: number }>} documents
 */

/**
 * A document change's progress and result (events `progress`, `done`, `error` of POST/DELETE /admin/documents).
 * @typedef {{ stage: string, done?: number, total?: number, detail?: string }} ChangeProgress
 * @typedef {{ change: 'upload' | 'delete', version: string, documents: number, chunks: number, reused: number, embedded: number, attempt: ReloadAttempt | null }} ChangeDone
 */
