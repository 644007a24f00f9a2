// @ts-check
// The active generation panel and the service state in the top bar: from GET /admin/status, or from
// the public GET /readyz when /admin/status needs a key this tab does not have.
import { els, h, present, showMessage, timeEl } from './dom.js';
import { noteStoreVersion, setDocumentsVisible } from './documents.js';
import { apiError, asError, describeError, keys, request } from './http.js';
/** @import { AdminStatus, GenerationInfo, PreviousSpec, Readyz } from './wire.js' */

/** /admin/status answered without an admin key: admin routes are open. */
let adminOpen = false;
/** @type {AdminStatus | null} the last status seen (from /admin/status or the events stream) */
let lastStatus = null;
/** @type {string | null} */
let answerer = null;
/** Counts status requests, so that an older answer arriving late is dropped. */
let statusSeq = 0;

/** @param {'ok' | 'warn' | 'down'} tone @param {string} text */
export function setServiceState(tone, text) {
  els.serviceState.dataset.tone = tone;
  els.serviceStateText.textContent = text;
}

/**
 * @param {Array<[label: string, value: Node | string, field: string]>} rows the value's `<dd>` gets `data-field`
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

/**
 * The panel's text when nothing serves: say so, and why when the service knows.
 * @param {{ code: string, message: string } | null | undefined} error
 */
function renderNothingServing(error) {
  els.generation.replaceChildren(
    ...present([h('p', { class: 'warning' }, ['No generation is serving.']), error ? h('p', null, [h('code', { class: 'code' }, [error.code]), ' ', error.message]) : null]),
  );
}

/**
 * Render `/admin/status` (or the events stream's `status`).
 * @param {AdminStatus} s
 */
export function renderStatus(s) {
  lastStatus = s;
  if (s.answerer) answerer = s.answerer;
  const a = s.active;
  if (!a) {
    renderNothingServing(s.lastError?.error);
    setServiceState('warn', 'Not ready');
    return;
  }
  renderGeneration(a, s.previous);
  setServiceState(s.draining ? 'warn' : 'ok', s.draining ? 'Shutting down' : `Ready · ${a.store.version}`);
}

/**
 * @param {GenerationInfo} a
 * @param {PreviousSpec | null} [previous] default: the last status's
 */
export function renderGeneration(a, previous) {
  const prev = previous === undefined ? lastStatus?.previous : previous;
  noteStoreVersion(a.store?.version);
  els.generation.replaceChildren(
    factList([
      ['Store version', h('code', null, [a.store?.version ?? '—']), 'store-version'],
      ['Chunks', String(a.store?.count ?? '—'), 'chunk-count'],
      ['Model', modelCell(a.model?.name, a.model?.id), 'model'],
      ['Dimension', String(a.model?.dimension ?? '—'), 'dimension'],
      ['Loaded at', a.model?.loadedAt ? timeEl(a.model.loadedAt, true) : '—', 'loaded-at'],
      ['Generation', h('code', null, [a.id ?? '—']), 'generation-id'],
      ['Collection', a.store?.collection ?? '—', 'collection'],
      ['Answerer', answerer ?? '—', 'answerer'],
      ['Previous', prev ? h('code', null, [prev.storeVersion ?? prev.model]) : 'none (nothing to roll back to)', 'previous'],
    ]),
  );
}

/** The public fallback when /admin/status needs a key: /readyz has the essentials. */
async function renderFromReadyz() {
  const res = await request('/readyz');
  const r = /** @type {Readyz} */ (await res.json());
  answerer = r.answerer ?? answerer;
  if (!r.store || !r.model) {
    renderNothingServing(r.lastError);
    setServiceState('warn', r.status === 'draining' ? 'Shutting down' : 'Not ready');
    return;
  }
  els.generation.replaceChildren(
    factList([
      ['Store version', h('code', null, [r.store.version]), 'store-version'],
      ['Chunks', String(r.store.count), 'chunk-count'],
      ['Model', modelCell(r.model.name, r.model.id), 'model'],
      ['Dimension', String(r.model.dimension), 'dimension'],
      ['Generation', h('code', null, [r.generation ?? '—']), 'generation-id'],
      ['Collection', r.store.collection, 'collection'],
      ['Answerer', r.answerer ?? '—', 'answerer'],
    ]),
    h('p', { class: 'hint' }, ['Enter the admin key for load times, history and controls.']),
  );
  setServiceState(r.status === 'ready' ? 'ok' : 'warn', r.status === 'ready' ? `Ready · ${r.store.version}` : r.status === 'draining' ? 'Shutting down' : 'Not ready');
}

/** Ask for the status again and render it (only the newest of overlapping requests renders). */
export async function refreshStatus() {
  const seq = ++statusSeq;
  try {
    const res = await request('/admin/status', { kind: 'admin' });
    if (seq !== statusSeq) return;
    if (res.ok) {
      adminOpen = !keys.admin;
      renderStatus(/** @type {AdminStatus} */ (await res.json()));
    } else if (res.status === 401 || res.status === 403) {
      adminOpen = false;
      const err = await apiError(res);
      if (keys.admin) showMessage(els.adminMessage, describeError(err, 'admin'));
      await renderFromReadyz();
    } else {
      const err = describeError(await apiError(res), 'admin');
      els.generation.replaceChildren(h('p', { class: 'warning' }, [err.title, ' ', err.detail]));
      setServiceState('warn', 'Status unavailable');
    }
  } catch (err) {
    if (seq !== statusSeq) return;
    setServiceState('down', 'Unreachable');
    els.generation.replaceChildren(h('p', { class: 'warning' }, [describeError(asError(err), 'admin').detail]));
  }
  updateAdminVisibility();
}

/** The reload and rollback buttons and the documents panel show with the admin key, or when admin routes are open. */
export function updateAdminVisibility() {
  els.adminActions.hidden = !(keys.admin || adminOpen);
  setDocumentsVisible(Boolean(keys.admin || adminOpen));
}

export function initStatus() {
  els.refreshStatus.addEventListener('click', () => void refreshStatus());
}
