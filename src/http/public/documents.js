// @ts-check
// Documents from the browser (admin): the served version's documents from GET /admin/documents,
// uploads (POST /admin/documents?name=...) and deletes (DELETE /admin/documents?source=...). Each
// change publishes a new store version; its progress arrives as server-sent events, and the reload
// it causes shows in the timeline like any other.
import { els, h, showMessage } from './dom.js';
import { apiError, asError, describeError, request } from './http.js';
import { jsonData, readSse } from './sse.js';
import { refreshStatus } from './status.js';
/** @import { ChangeDone, ChangeProgress, DocumentsList, ErrorInfo } from './wire.js' */

/** Whether a change is running from this page (buttons stay disabled meanwhile). */
let busy = false;
/** @type {DocumentsList | null} */
let last = null;
/** Counts list requests, so that an older answer arriving late is dropped. */
let listSeq = 0;

/** @param {number} bytes */
function size(bytes) {
  return bytes >= 2 ** 20 ? `${Math.round((bytes / 2 ** 20) * 10) / 10} MiB` : `${Math.round(bytes / 1024)} KiB`;
}

/** Shown with the admin key (or when admin routes are open), like the reload buttons. @param {boolean} visible */
export function setDocumentsVisible(visible) {
  const was = !els.docsPanel.hidden;
  els.docsPanel.hidden = !visible;
  if (visible && !was) void refreshDocuments();
}

/**
 * The served store version changed (a reload landed): list its documents when the panel shows an older one.
 * @param {string | undefined} version
 */
export function noteStoreVersion(version) {
  if (!els.docsPanel.hidden && !busy && last && version && last.storeVersion !== version) void refreshDocuments();
}

/** @param {DocumentsList} list */
function render(list) {
  last = list;
  const readOnly = !list.writable.ok;
  els.docsNote.hidden = !readOnly;
  els.docsNote.replaceChildren(
    ...(readOnly
      ? [h('strong', null, ['Read-only: ']), list.writable.message ?? 'documents cannot be changed here.', ' ', h('code', { class: 'code' }, [list.writable.code ?? ''])]
      : []),
  );
  els.docsNote.dataset.code = list.writable.code ?? '';
  els.uploadFile.disabled = readOnly || busy;
  els.upload.disabled = readOnly || busy;
  els.uploadHint.textContent = `${list.types.join(', ')} · up to ${size(list.maxUploadBytes)} · a file with the name of a listed document replaces it.`;
  els.docsSummary.textContent = `${list.documents.length} documents · store ${list.storeVersion}`;
  els.docsList.replaceChildren(
    ...list.documents.map((d) => {
      const del = h('button', { type: 'button', class: 'secondary small', 'aria-label': `Delete ${d.source}` }, ['Delete']);
      del.disabled = readOnly || busy;
      del.addEventListener('click', () => void remove(d.source));
      return h('li', { class: 'doc', 'data-source': d.source }, [
        h('span', { class: 'doc-name', title: d.title }, [d.source]),
        h('span', { class: 'doc-meta' }, [`${d.type || '?'} · ${d.chunks} chunk${d.chunks === 1 ? '' : 's'}`]),
        del,
      ]);
    }),
  );
}

/** Ask for the list again and render it. */
export async function refreshDocuments() {
  const seq = ++listSeq;
  try {
    const res = await request('/admin/documents', { kind: 'admin' });
    if (seq !== listSeq) return;
    if (!res.ok) {
      showMessage(els.docsMessage, describeError(await apiError(res), 'admin'));
      return;
    }
    render(/** @type {DocumentsList} */ (await res.json()));
  } catch (err) {
    if (seq === listSeq) showMessage(els.docsMessage, describeError(asError(err), 'admin'));
  }
}

/** @param {ChangeProgress} p */
function progressText(p) {
  switch (p.stage) {
    case 'reading':
      return 'Reading the served version…';
    case 'chunking':
      return 'Splitting into chunks…';
    case 'embedding':
      return `Embedding ${p.done ?? 0}/${p.total ?? '?'} chunks${p.detail ? ` (${p.detail})` : ''}…`;
    case 'publishing':
      return 'Publishing the new version…';
    case 'published':
      return `Published ${p.detail ?? ''}; reloading…`;
    default:
      return `${p.stage}…`;
  }
}

/**
 * Send one change and follow its progress stream to the end.
 * @param {string} path @param {string} method @param {Blob | undefined} raw @param {string} what
 */
async function runChange(path, method, raw, what) {
  busy = true;
  if (last) render(last);
  showMessage(els.docsMessage, { title: `${what}…` }, 'info');
  try {
    const res = await request(path, { method, kind: 'admin', accept: 'text/event-stream', ...(raw ? { raw } : {}) });
    if (!res.ok || !res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      showMessage(els.docsMessage, describeError(await apiError(res), 'admin'));
      return;
    }
    /** @type {'done' | 'error' | null} */
    let ended = null;
    for await (const ev of readSse(res.body)) {
      const data = jsonData(ev);
      if (!data) continue;
      if (ev.event === 'progress') {
        showMessage(els.docsMessage, { title: progressText(/** @type {ChangeProgress} */ (data)) }, 'info');
      } else if (ev.event === 'done') {
        ended = 'done';
        const d = /** @type {ChangeDone} */ (data);
        const outcome = d.attempt?.outcome ?? 'unknown';
        const detail = `Store ${d.version}: ${d.documents} documents, ${d.chunks} chunks (${d.embedded} embedded, ${d.reused} reused); reload ${outcome}.`;
        if (outcome === 'rejected') showMessage(els.docsMessage, { title: 'Published, but the reload was rejected.', detail: `${detail} ${d.attempt?.error?.message ?? ''}`, code: d.attempt?.error?.code }, 'error');
        else showMessage(els.docsMessage, { title: `${what}: done.`, detail }, 'ok');
      } else if (ev.event === 'error') {
        ended = 'error';
        const e = /** @type {{ error: ErrorInfo }} */ (data).error;
        showMessage(els.docsMessage, { title: `${what} failed.`, detail: e.message, code: e.code });
      }
    }
    if (!ended) showMessage(els.docsMessage, { title: `${what}: the connection ended early.`, detail: 'Refresh the list to see whether the change was published.' });
  } catch (err) {
    showMessage(els.docsMessage, describeError(asError(err), 'admin'));
  } finally {
    busy = false;
    await refreshDocuments();
    void refreshStatus();
  }
}

/** @param {string} source */
async function remove(source) {
  if (busy) return;
  if (!window.confirm(`Delete ${source} from the store? A new version without it is published.`)) return;
  await runChange(`/admin/documents?source=${encodeURIComponent(source)}`, 'DELETE', undefined, `Deleting ${source}`);
}

export function initDocuments() {
  els.docsRefresh.addEventListener('click', () => void refreshDocuments());
  els.uploadForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const file = els.uploadFile.files?.[0];
    if (!file) {
      showMessage(els.docsMessage, { title: 'Choose a file first.' });
      return;
    }
    if (last && file.size > last.maxUploadBytes) {
      showMessage(els.docsMessage, { title: 'The file is too large.', detail: `${file.name} is ${size(file.size)}; the limit is ${size(last.maxUploadBytes)}.`, code: 'RAG_DOCS_TOO_LARGE' });
      return;
    }
    void runChange(`/admin/documents?name=${encodeURIComponent(file.name)}`, 'POST', file, `Uploading ${file.name}`).then(() => {
      els.uploadForm.reset();
    });
  });
}
