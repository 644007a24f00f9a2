// RAG console: ask questions (streamed answers with citations), watch the active generation and
// the reload timeline, and trigger reload / rollback. Plain ES module, no build step, no framework.
// Server-sent events are read with fetch + ReadableStream (not EventSource) so that an
// Authorization header can be sent.

const KEY_STORAGE = { api: 'rag-console.apiKey', admin: 'rag-console.adminKey' };
const TIMELINE_MAX = 200;
const POLL_MS = 5000;

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const els = {
  serviceState: $('service-state'),
  serviceStateText: $('service-state-text'),
  askForm: /** @type {HTMLFormElement} */ ($('ask-form')),
  question: /** @type {HTMLTextAreaElement} */ ($('question')),
  k: /** @type {HTMLInputElement} */ ($('k')),
  ask: /** @type {HTMLButtonElement} */ ($('ask')),
  stop: /** @type {HTMLButtonElement} */ ($('stop')),
  askError: $('ask-error'),
  answer: $('answer'),
  answerMeta: $('answer-meta'),
  sourcesSection: $('sources-section'),
  sources: $('sources'),
  generation: $('generation'),
  refreshStatus: $('refresh-status'),
  adminActions: $('admin-actions'),
  reload: /** @type {HTMLButtonElement} */ ($('reload')),
  rollback: /** @type {HTMLButtonElement} */ ($('rollback')),
  adminMessage: $('admin-message'),
  eventsState: $('events-state'),
  timeline: $('timeline'),
  timelineNote: $('timeline-note'),
  keysForm: /** @type {HTMLFormElement} */ ($('keys-form')),
  apiKey: /** @type {HTMLInputElement} */ ($('api-key')),
  adminKey: /** @type {HTMLInputElement} */ ($('admin-key')),
  keysClear: $('keys-clear'),
  keysMessage: $('keys-message'),
};

const state = {
  keys: { api: '', admin: '' },
  /** /admin/status answered without an admin key: admin routes are open. */
  adminOpen: false,
  /** The last status seen (from /admin/status or the events stream). */
  status: /** @type {any} */ (null),
  answerer: /** @type {string | null} */ (null),
  statusSeq: 0,
  askAbort: /** @type {AbortController | null} */ (null),
  eventsAbort: /** @type {AbortController | null} */ (null),
  pollTimer: /** @type {number | undefined} */ (undefined),
  shownAttempts: new Set(),
  pendingEntry: /** @type {HTMLElement | null} */ (null),
};

// ---------------------------------------------------------------------------------------------
// Small DOM helpers (text is always set as text, never parsed as HTML)

/**
 * @param {string} tag
 * @param {Record<string, string | boolean | undefined> | null} [attrs]
 * @param {Array<Node | string | null | undefined | false>} [children]
 */
function h(tag, attrs, children = []) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) continue;
    if (name === 'class') el.className = String(value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** @param {string | null | undefined} iso */
function timeEl(iso, withDate = false) {
  if (!iso) return document.createTextNode('—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  const text = withDate
    ? d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return h('time', { datetime: iso, title: iso }, [text]);
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve(undefined)), { once: true });
  });

// ---------------------------------------------------------------------------------------------
// HTTP: keys, errors, server-sent events

/** @param {'api' | 'admin'} kind */
function authHeaders(kind) {
  const key = kind === 'admin' ? state.keys.admin : state.keys.api || state.keys.admin;
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class NetworkError extends Error {}

/**
 * fetch with the right key; a failure to reach the service becomes a NetworkError.
 * @param {string} path
 * @param {{ method?: string, body?: unknown, kind?: 'api' | 'admin', signal?: AbortSignal }} [opts]
 */
async function request(path, opts = {}) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json', ...authHeaders(opts.kind ?? 'api') };
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  try {
    return await fetch(path, {
      method: opts.method ?? 'GET',
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: opts.signal,
      cache: 'no-store',
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === 'AbortError') throw err;
    throw new NetworkError(err instanceof Error ? err.message : String(err));
  }
}

/**
 * The API's `{ error: { code, message } }`, or something close when the body is not that.
 * @param {Response} res
 */
async function apiError(res) {
  const text = await res.text().catch(() => '');
  let code = `HTTP_${res.status}`;
  let message = res.statusText || 'request failed';
  try {
    const body = JSON.parse(text);
    if (body?.error?.code) code = body.error.code;
    if (body?.error?.message) message = body.error.message;
  } catch {
    if (text && text.length < 300) message = text;
  }
  return { status: res.status, code, message, retryAfter: res.headers.get('Retry-After') };
}

/**
 * A message for a person: what happened and what to do about it.
 * @param {{ status?: number, code?: string, message?: string, retryAfter?: string | null } | Error} err
 * @param {'api' | 'admin'} kind
 * @returns {{ title: string, detail: string, code?: string }}
 */
function describeError(err, kind) {
  if (err instanceof NetworkError) {
    return { title: 'Network error', detail: `The service could not be reached (${err.message}). Check that it is running and try again.` };
  }
  if (err instanceof Error) return { title: 'Error', detail: err.message };
  const { status = 0, code, message = '' } = err;
  const which = kind === 'admin' ? 'admin key' : 'API key';
  switch (true) {
    case status === 429:
      return { title: 'Too many requests, retry shortly.', detail: `${message}${err.retryAfter ? ` (retry after ${err.retryAfter} s)` : ''}`, code };
    case status === 401:
      return { title: 'Not authorised (401).', detail: `${message}. Enter a valid ${which} under “Access keys”.`, code };
    case status === 403:
      return { title: 'Forbidden (403).', detail: `${message}.${kind === 'admin' ? ' Use the admin key for this.' : ''}`, code };
    case status === 503 && code === 'RAG_NOT_READY':
      return { title: 'The service is not ready yet.', detail: `${message}. No generation is serving; try again once a store has been loaded.`, code };
    case status === 503:
      return { title: 'Service unavailable (503).', detail: message, code };
    case status === 400 || status === 413 || status === 415:
      return { title: 'The request was not accepted.', detail: message, code };
    default:
      return { title: `Request failed (${status}).`, detail: message, code };
  }
}

/**
 * @param {HTMLElement} el
 * @param {{ title: string, detail?: string, code?: string } | null} msg
 * @param {'error' | 'ok' | 'info'} [tone]
 */
function showMessage(el, msg, tone = 'error') {
  el.replaceChildren();
  if (!msg) {
    el.hidden = true;
    return;
  }
  el.className = `message ${tone}`;
  el.append(h('strong', null, [msg.title]));
  if (msg.detail) el.append(' ', msg.detail);
  if (msg.code) el.append(' ', h('code', { class: 'code' }, [msg.code]));
  el.hidden = false;
}

/**
 * Parse a text/event-stream body: yields { event, data } per dispatched event.
 * @param {ReadableStream<Uint8Array>} body
 */
async function* readSse(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  let event = '';
  /** @type {string[]} */
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) yield { event: event || 'message', data: data.join('\n') };
          event = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue; // comment / keep-alive ping
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
    }
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Asking: streamed answer with citations

const CITATION = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

/** Appends streamed answer text, turning [n] / [n, m] into links to the source cards. */
class AnswerWriter {
  /** @param {HTMLElement} container @param {number} sourceCount */
  constructor(container, sourceCount) {
    this.container = container;
    this.sourceCount = sourceCount;
    this.pending = '';
    this.text = '';
    /** @type {Set<number>} */
    this.cited = new Set();
  }

  /** @param {string} piece */
  push(piece) {
    this.pending += piece;
    // Hold back a citation that may still be arriving ("[1" ... "2]").
    const open = this.pending.lastIndexOf('[');
    let cut = this.pending.length;
    if (open >= 0 && this.pending.indexOf(']', open) < 0 && this.pending.length - open < 16) cut = open;
    this.emit(this.pending.slice(0, cut));
    this.pending = this.pending.slice(cut);
  }

  flush() {
    this.emit(this.pending);
    this.pending = '';
  }

  /** @param {string} text */
  emit(text) {
    if (!text) return;
    this.text += text;
    let last = 0;
    for (const m of text.matchAll(CITATION)) {
      const nums = m[1].split(',').map((s) => Number(s.trim()));
      if (!nums.every((n) => n >= 1 && n <= this.sourceCount)) continue;
      if (m.index > last) this.container.append(text.slice(last, m.index));
      const cite = h('span', { class: 'cite' }, ['[']);
      nums.forEach((n, i) => {
        if (i) cite.append(', ');
        this.cited.add(n);
        cite.append(h('a', { href: `#source-${n}`, 'aria-label': `source ${n}`, 'data-source': String(n) }, [String(n)]));
      });
      cite.append(']');
      this.container.append(cite);
      last = m.index + m[0].length;
    }
    if (last < text.length) this.container.append(text.slice(last));
  }
}

/** @param {any[]} sources */
function renderSources(sources) {
  els.sources.replaceChildren();
  sources.forEach((s, i) => {
    const n = i + 1;
    const meta = s?.metadata ?? {};
    const doc = String(meta.source ?? s?.id ?? 'unknown source');
    const title = meta.title && String(meta.title) !== doc ? String(meta.title) : '';
    const score = typeof s?.score === 'number' ? s.score.toFixed(3) : '—';
    const extra = [meta.type, meta.chunk !== undefined && meta.chunk !== null ? `chunk ${meta.chunk}` : null].filter(Boolean).join(' · ');
    els.sources.append(
      h('li', { class: 'source', id: `source-${n}`, tabindex: '-1', 'data-doc': doc }, [
        h('div', { class: 'source-head' }, [
          h('span', { class: 'source-num', 'aria-hidden': 'true' }, [String(n)]),
          h('div', { class: 'source-names' }, [
            h('span', { class: 'source-doc' }, [doc]),
            title ? h('span', { class: 'source-title' }, [title]) : null,
          ]),
          h('span', { class: 'score', title: 'similarity score' }, [h('span', { class: 'visually-hidden' }, ['score ']), score]),
        ]),
        h('p', { class: 'source-text' }, [String(s?.text ?? '')]),
        extra ? h('p', { class: 'source-extra' }, [extra]) : null,
      ]),
    );
  });
  els.sourcesSection.hidden = sources.length === 0;
}

/** @param {'streaming' | 'done' | 'error' | 'stopped' | 'empty'} value */
function setAnswerState(value) {
  els.answer.dataset.state = value;
  const busy = value === 'streaming';
  els.answer.setAttribute('aria-busy', String(busy));
  els.ask.disabled = busy;
  els.stop.hidden = !busy;
}

/** @param {string} question */
async function ask(question) {
  state.askAbort?.abort();
  const controller = new AbortController();
  state.askAbort = controller;
  showMessage(els.askError, null);
  els.answer.replaceChildren();
  els.answerMeta.hidden = true;
  els.sources.replaceChildren();
  els.sourcesSection.hidden = true;
  setAnswerState('streaming');
  const kValue = Number.parseInt(els.k.value, 10);
  const body = {
    model: 'rag',
    stream: true,
    messages: [{ role: 'user', content: question }],
    ...(Number.isFinite(kValue) ? { k: kValue } : {}),
  };
  let writer = new AnswerWriter(els.answer, 0);
  const fail = (/** @type {{ title: string, detail?: string, code?: string }} */ msg) => {
    showMessage(els.askError, msg);
    if (!writer.text) els.answer.replaceChildren(h('p', { class: 'placeholder' }, ['No answer.']));
    setAnswerState('error');
  };
  try {
    const res = await request('/v1/chat/completions', { method: 'POST', body, kind: 'api', signal: controller.signal });
    if (!res.ok) return fail(describeError(await apiError(res), 'api'));
    if (!res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      // A non-streaming answer (a proxy may buffer): render it whole.
      const json = await res.json();
      renderSources(json.sources ?? []);
      writer = new AnswerWriter(els.answer, (json.sources ?? []).length);
      writer.push(json.choices?.[0]?.message?.content ?? '');
      writer.flush();
      renderAnswerMeta(json.generation);
      markCited(writer.cited);
      setAnswerState('done');
      return;
    }
    let finished = false;
    for await (const ev of readSse(res.body)) {
      if (ev.data === '[DONE]') {
        finished = true;
        break;
      }
      let chunk;
      try {
        chunk = JSON.parse(ev.data);
      } catch {
        continue;
      }
      if (chunk.error) {
        writer.flush();
        return fail({ title: 'The answer stopped with an error.', detail: String(chunk.error.message ?? ''), code: chunk.error.code });
      }
      if (Array.isArray(chunk.sources) && writer.sourceCount === 0 && chunk.sources.length) {
        renderSources(chunk.sources);
        writer.sourceCount = chunk.sources.length;
      }
      if (chunk.generation) renderAnswerMeta(chunk.generation);
      const piece = chunk.choices?.[0]?.delta?.content;
      if (typeof piece === 'string' && piece) writer.push(piece);
    }
    writer.flush();
    markCited(writer.cited);
    if (!finished) {
      showMessage(els.askError, { title: 'The answer stream ended early.', detail: 'The connection closed before the answer was complete; the text above may be cut short.' });
      setAnswerState('error');
      return;
    }
    if (!writer.text) els.answer.replaceChildren(h('p', { class: 'placeholder' }, ['The service returned an empty answer.']));
    setAnswerState('done');
  } catch (err) {
    writer.flush();
    if (err instanceof DOMException && err.name === 'AbortError') {
      if (state.askAbort === controller) {
        els.answer.append(h('span', { class: 'stopped' }, [' (stopped)']));
        setAnswerState('stopped');
      }
      return;
    }
    // A stream cut mid-way surfaces here as a TypeError from reader.read().
    fail(describeError(err instanceof NetworkError ? err : new NetworkError(err instanceof Error ? err.message : String(err)), 'api'));
  } finally {
    if (state.askAbort === controller) state.askAbort = null;
  }
}

/** @param {Set<number>} cited */
function markCited(cited) {
  for (const li of els.sources.children) {
    const n = Number(li.id.replace('source-', ''));
    li.classList.toggle('cited', cited.has(n));
  }
}

/** @param {{ id?: string, storeVersion?: string, model?: string } | undefined} gen */
function renderAnswerMeta(gen) {
  if (!gen) return;
  els.answerMeta.replaceChildren(
    'Answered by generation ',
    h('code', null, [gen.id ?? '?']),
    ' · store ',
    h('code', null, [gen.storeVersion ?? '?']),
    ' · model ',
    h('code', null, [gen.model ?? '?']),
  );
  els.answerMeta.hidden = false;
}

els.askForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const question = els.question.value.trim();
  if (!question) {
    showMessage(els.askError, { title: 'Type a question first.' });
    els.question.focus();
    return;
  }
  void ask(question);
});

els.question.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    if (!els.ask.disabled) els.askForm.requestSubmit();
  }
});

els.stop.addEventListener('click', () => {
  state.askAbort?.abort();
  els.question.focus();
});

// Citation links: move focus to the source card (and keep the page's scroll smooth).
els.answer.addEventListener('click', (e) => {
  const a = /** @type {HTMLElement} */ (e.target).closest?.('a[data-source]');
  if (!a) return;
  const card = document.getElementById(`source-${a.getAttribute('data-source')}`);
  if (!card) return;
  e.preventDefault();
  const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
  card.scrollIntoView({ behavior: smooth ? 'smooth' : 'auto', block: 'nearest' });
  card.focus({ preventScroll: true });
  card.classList.remove('flash');
  void card.offsetWidth; // restart the highlight animation
  card.classList.add('flash');
});

// ---------------------------------------------------------------------------------------------
// Active generation and service state

/** @param {'ok' | 'warn' | 'down'} tone @param {string} text */
function setServiceState(tone, text) {
  els.serviceState.dataset.tone = tone;
  els.serviceStateText.textContent = text;
}

/**
 * @param {Array<[string, Node | string, string?]>} rows label, value, data-field
 */
function factList(rows) {
  const dl = h('dl', { class: 'facts' });
  for (const [label, value, field] of rows) dl.append(h('div', null, [h('dt', null, [label]), h('dd', { 'data-field': field }, [value])]));
  return dl;
}

/**
 * The model's name, and its id below it when that says more (the id is `<name>@<weights sha>`).
 * @param {string | undefined} name @param {string | undefined} id
 */
function modelCell(name, id) {
  const sub = id && id !== name ? (name && id.startsWith(`${name}@`) ? `weights ${id.slice(name.length + 1)}` : id) : null;
  return h('span', { title: id ?? '' }, [name ?? id ?? '—', sub ? h('code', { class: 'sub' }, [sub]) : null]);
}

/** Render `/admin/status` (or the events stream's `status`). */
function renderStatus(s) {
  state.status = s;
  if (s.answerer) state.answerer = s.answerer;
  const a = s.active;
  if (!a) {
    els.generation.replaceChildren(
      h('p', { class: 'warning' }, ['No generation is serving.']),
      s.lastError?.error ? h('p', null, [h('code', { class: 'code' }, [s.lastError.error.code]), ' ', s.lastError.error.message]) : null,
    );
    setServiceState('warn', 'Not ready');
    return;
  }
  renderGeneration(a, s.previous);
  setServiceState(s.draining ? 'warn' : 'ok', s.draining ? 'Shutting down' : `Ready · ${a.store.version}`);
}

/**
 * @param {any} a GenerationInfo
 * @param {{ storeVersion: string | null, model: string } | null | undefined} [previous]
 */
function renderGeneration(a, previous) {
  const prev = previous === undefined ? state.status?.previous : previous;
  els.generation.replaceChildren(
    factList([
      ['Store version', h('code', null, [a.store?.version ?? '—']), 'store-version'],
      ['Chunks', String(a.store?.count ?? '—'), 'chunk-count'],
      ['Model', modelCell(a.model?.name, a.model?.id), 'model'],
      ['Dimension', String(a.model?.dimension ?? '—'), 'dimension'],
      ['Loaded at', a.model?.loadedAt ? timeEl(a.model.loadedAt, true) : '—', 'loaded-at'],
      ['Generation', h('code', null, [a.id ?? '—']), 'generation-id'],
      ['Collection', a.store?.collection ?? '—', 'collection'],
      ['Answerer', state.answerer ?? '—', 'answerer'],
      ['Previous', prev ? h('code', null, [prev.storeVersion ?? prev.model]) : 'none (nothing to roll back to)', 'previous'],
    ]),
  );
}

/** The public fallback when /admin/status needs a key: /readyz has the essentials. */
async function renderFromReadyz() {
  const res = await request('/readyz');
  const r = await res.json();
  state.answerer = r.answerer ?? state.answerer;
  if (!r.store) {
    els.generation.replaceChildren(h('p', { class: 'warning' }, ['No generation is serving.']), r.lastError ? h('p', null, [h('code', { class: 'code' }, [r.lastError.code]), ' ', r.lastError.message]) : null);
    setServiceState('warn', r.status === 'draining' ? 'Shutting down' : 'Not ready');
    return;
  }
  els.generation.replaceChildren(
    factList([
      ['Store version', h('code', null, [r.store.version]), 'store-version'],
      ['Chunks', String(r.store.count), 'chunk-count'],
      ['Model', modelCell(r.model.name, r.model.id), 'model'],
      ['Dimension', String(r.model.dimension), 'dimension'],
      ['Generation', h('code', null, [r.generation]), 'generation-id'],
      ['Collection', r.store.collection, 'collection'],
      ['Answerer', r.answerer ?? '—', 'answerer'],
    ]),
    h('p', { class: 'hint' }, ['Enter the admin key for load times, history and controls.']),
  );
  setServiceState(r.status === 'ready' ? 'ok' : 'warn', r.status === 'ready' ? `Ready · ${r.store.version}` : r.status === 'draining' ? 'Shutting down' : 'Not ready');
}

async function refreshStatus() {
  const seq = ++state.statusSeq;
  try {
    const res = await request('/admin/status', { kind: 'admin' });
    if (seq !== state.statusSeq) return;
    if (res.ok) {
      state.adminOpen = !state.keys.admin;
      renderStatus(await res.json());
    } else if (res.status === 401 || res.status === 403) {
      state.adminOpen = false;
      const err = await apiError(res);
      if (state.keys.admin) showMessage(els.adminMessage, describeError(err, 'admin'));
      await renderFromReadyz();
    } else {
      const err = describeError(await apiError(res), 'admin');
      els.generation.replaceChildren(h('p', { class: 'warning' }, [err.title, ' ', err.detail]));
      setServiceState('warn', 'Status unavailable');
    }
  } catch (err) {
    if (seq !== state.statusSeq) return;
    setServiceState('down', 'Unreachable');
    els.generation.replaceChildren(h('p', { class: 'warning' }, [describeError(/** @type {Error} */ (err), 'admin').detail]));
  }
  updateAdminVisibility();
}

function updateAdminVisibility() {
  els.adminActions.hidden = !(state.keys.admin || state.adminOpen);
}

els.refreshStatus.addEventListener('click', () => void refreshStatus());

// ---------------------------------------------------------------------------------------------
// Reload timeline (GET /admin/events)

const OUTCOME_LABEL = {
  'reload.started': 'Reload started',
  'reload.accepted': 'Accepted',
  'reload.rejected': 'Rejected',
  'reload.superseded': 'Superseded',
  'reload.unchanged': 'Unchanged',
  'reload.rolled_back': 'Rolled back',
  'generation.retired': 'Retired',
  'chroma.restarted': 'Chroma restarted',
};
const OUTCOME_EVENT = { accepted: 'reload.accepted', rejected: 'reload.rejected', superseded: 'reload.superseded', unchanged: 'reload.unchanged', rolled_back: 'reload.rolled_back' };

/** @param {'connecting' | 'live' | 'reconnecting' | 'locked' | 'offline'} value */
function setEventsState(value) {
  els.eventsState.dataset.state = value;
  els.eventsState.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', locked: 'admin key needed', offline: 'offline' }[value];
}

/** @param {HTMLElement} li @param {boolean} [atTop] */
function addTimelineEntry(li, atTop = true) {
  const empty = els.timeline.querySelector('.tl-empty');
  if (empty) empty.remove();
  if (atTop) els.timeline.prepend(li);
  else els.timeline.append(li);
  while (els.timeline.children.length > TIMELINE_MAX) els.timeline.lastElementChild?.remove();
}

/**
 * @param {string} type event name
 * @param {string} at ISO time
 * @param {Array<Node | string | null>} body
 * @param {Array<Node | string | null>} [error]
 */
function timelineItem(type, at, body, error) {
  const tone = type.replace(/^.*\./, '');
  return h('li', { class: `tl tl-${tone}`, 'data-type': type }, [
    h('div', { class: 'tl-head' }, [h('span', { class: 'badge' }, [OUTCOME_LABEL[type] ?? type]), timeEl(at)]),
    body.length ? h('p', { class: 'tl-body' }, body) : null,
    error ? h('p', { class: 'tl-error' }, error) : null,
  ]);
}

/** @param {any} attempt ReloadAttempt @param {string} [at] */
function attemptItem(attempt, at) {
  const type = OUTCOME_EVENT[attempt.outcome] ?? `reload.${attempt.outcome}`;
  const parts = [];
  if (attempt.storeVersion) parts.push('store ', h('code', null, [attempt.storeVersion]));
  if (attempt.model) parts.push(parts.length ? ' · model ' : 'model ', h('code', null, [attempt.model]));
  parts.push(`${parts.length ? ' · ' : ''}${attempt.durationMs} ms · ${attempt.trigger}`);
  const error = attempt.error ? [h('code', { class: 'code' }, [attempt.error.code]), ' ', attempt.error.message] : undefined;
  const li = timelineItem(type, at ?? attempt.startedAt, parts, error);
  li.dataset.attempt = String(attempt.id);
  if (attempt.error) li.dataset.code = attempt.error.code;
  return li;
}

function clearPending() {
  state.pendingEntry?.remove();
  state.pendingEntry = null;
}

/** @param {any} status */
function seedTimeline(status) {
  const history = Array.isArray(status.history) ? [...status.history].reverse() : []; // oldest first
  for (const attempt of history) {
    if (state.shownAttempts.has(attempt.id)) continue;
    state.shownAttempts.add(attempt.id);
    addTimelineEntry(attemptItem(attempt));
  }
  if (status.reloading && !state.pendingEntry) {
    state.pendingEntry = timelineItem('reload.started', new Date().toISOString(), ['validating and building a new generation…']);
    state.pendingEntry.classList.add('tl-pending');
    addTimelineEntry(state.pendingEntry);
  }
  if (!els.timeline.children.length) els.timeline.append(h('li', { class: 'tl-empty' }, ['No reload attempts yet.']));
}

/** @param {{ event: string, data: string }} ev */
function handleEvent(ev) {
  let data;
  try {
    data = JSON.parse(ev.data);
  } catch {
    return;
  }
  switch (ev.event) {
    case 'status':
      renderStatus(data);
      seedTimeline(data);
      return;
    case 'reload.started':
      clearPending();
      state.pendingEntry = timelineItem('reload.started', data.at, ['validating and building a new generation…']);
      state.pendingEntry.classList.add('tl-pending');
      addTimelineEntry(state.pendingEntry);
      return;
    case 'reload.accepted':
    case 'reload.rejected':
    case 'reload.superseded':
    case 'reload.unchanged':
    case 'reload.rolled_back': {
      clearPending();
      if (data.attempt && !state.shownAttempts.has(data.attempt.id)) {
        state.shownAttempts.add(data.attempt.id);
        addTimelineEntry(attemptItem(data.attempt, data.at));
      }
      if (ev.event === 'reload.accepted' || ev.event === 'reload.rolled_back') {
        if (data.generation) {
          renderGeneration(data.generation);
          setServiceState('ok', `Ready · ${data.generation.store.version}`);
        }
        void refreshStatus();
      } else if (ev.event === 'reload.rejected' && state.status) {
        state.status.lastError = data.attempt ?? state.status.lastError;
      }
      return;
    }
    case 'generation.retired':
    case 'chroma.restarted': {
      const g = data.generation;
      const body = g ? ['generation ', h('code', null, [g.id]), ' · store ', h('code', null, [g.store?.version ?? '?'])] : [];
      addTimelineEntry(timelineItem(ev.event, data.at, body));
      return;
    }
    default:
  }
}

function startPolling() {
  if (state.pollTimer !== undefined) return;
  state.pollTimer = window.setInterval(() => {
    if (document.visibilityState === 'visible') void refreshStatus();
  }, POLL_MS);
}

function stopPolling() {
  if (state.pollTimer !== undefined) window.clearInterval(state.pollTimer);
  state.pollTimer = undefined;
}

/** Follow /admin/events for as long as the page lives; reconnect with backoff. */
async function followEvents() {
  state.eventsAbort?.abort();
  const controller = new AbortController();
  state.eventsAbort = controller;
  const { signal } = controller;
  let delay = 1000;
  while (!signal.aborted) {
    setEventsState('connecting');
    try {
      const res = await fetch('/admin/events', { headers: { Accept: 'text/event-stream', ...authHeaders('admin') }, signal, cache: 'no-store' });
      if (res.status === 401 || res.status === 403) {
        const err = await apiError(res);
        setEventsState('locked');
        els.timelineNote.textContent = `${err.message}. The timeline needs the admin key; the generation panel refreshes every ${POLL_MS / 1000} s meanwhile.`;
        els.timelineNote.hidden = false;
        startPolling();
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      els.timelineNote.hidden = true;
      setEventsState('live');
      stopPolling();
      delay = 1000;
      for await (const ev of readSse(res.body)) {
        if (signal.aborted) return;
        handleEvent(ev);
      }
    } catch (err) {
      if (signal.aborted) return;
    }
    // The stream ended or failed: keep the panel fresh and try again.
    clearPending();
    setEventsState('reconnecting');
    startPolling();
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 15_000);
  }
}

// ---------------------------------------------------------------------------------------------
// Admin actions

/** @param {'/admin/reload' | '/admin/rollback'} path @param {string} busyText */
async function adminAction(path, busyText) {
  els.reload.disabled = true;
  els.rollback.disabled = true;
  showMessage(els.adminMessage, { title: busyText }, 'info');
  try {
    const res = await request(path, { method: 'POST', kind: 'admin' });
    if (res.ok || res.status === 422) {
      const body = await res.json();
      const a = body.attempt;
      if (a?.outcome === 'rejected') {
        showMessage(els.adminMessage, { title: 'Rejected:', detail: `${a.error?.message ?? 'the new generation failed validation'}. The active generation keeps serving.`, code: a.error?.code }, 'error');
      } else {
        const label = { accepted: 'Reloaded', rolled_back: 'Rolled back', unchanged: 'Unchanged', superseded: 'Superseded' }[a?.outcome] ?? 'Done';
        showMessage(els.adminMessage, { title: `${label}.`, detail: body.active ? `Serving store ${body.active.store.version} (generation ${body.active.id}).` : '' }, 'ok');
      }
    } else {
      showMessage(els.adminMessage, describeError(await apiError(res), 'admin'));
    }
  } catch (err) {
    showMessage(els.adminMessage, describeError(/** @type {Error} */ (err), 'admin'));
  } finally {
    els.reload.disabled = false;
    els.rollback.disabled = false;
    void refreshStatus();
  }
}

els.reload.addEventListener('click', () => void adminAction('/admin/reload', 'Reloading…'));
els.rollback.addEventListener('click', () => void adminAction('/admin/rollback', 'Rolling back…'));

// ---------------------------------------------------------------------------------------------
// Keys (sessionStorage: this tab only)

function loadKeys() {
  try {
    state.keys.api = sessionStorage.getItem(KEY_STORAGE.api) ?? '';
    state.keys.admin = sessionStorage.getItem(KEY_STORAGE.admin) ?? '';
  } catch {
    /* storage disabled: keys live in memory only */
  }
  els.apiKey.value = state.keys.api;
  els.adminKey.value = state.keys.admin;
}

function applyKeys() {
  const api = els.apiKey.value.trim();
  const admin = els.adminKey.value.trim();
  const changed = api !== state.keys.api || admin !== state.keys.admin;
  state.keys = { api, admin };
  try {
    for (const [name, value] of [[KEY_STORAGE.api, api], [KEY_STORAGE.admin, admin]]) {
      if (value) sessionStorage.setItem(name, value);
      else sessionStorage.removeItem(name);
    }
  } catch {
    /* storage disabled */
  }
  if (!changed) return false;
  showMessage(els.adminMessage, null);
  updateAdminVisibility();
  void refreshStatus();
  void followEvents();
  return true;
}

els.keysForm.addEventListener('submit', (e) => {
  e.preventDefault();
  applyKeys();
  showMessage(els.keysMessage, { title: 'Keys saved for this tab.' }, 'ok');
});
els.apiKey.addEventListener('change', () => applyKeys());
els.adminKey.addEventListener('change', () => applyKeys());
els.keysClear.addEventListener('click', () => {
  els.apiKey.value = '';
  els.adminKey.value = '';
  applyKeys();
  showMessage(els.keysMessage, { title: 'Keys cleared.' }, 'ok');
});

// ---------------------------------------------------------------------------------------------

loadKeys();
void refreshStatus();
void followEvents();
