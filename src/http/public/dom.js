// @ts-check
// The page's elements and small DOM helpers. Text is always set as text, never parsed as HTML.

/**
 * The element with this id, checked to be of the expected kind: a page that lost or renamed one
 * fails here, by name, instead of at the first use.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T, prototype: T }} type
 * @returns {T}
 */
function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`the console page has no ${type.name} #${id}`);
  return el;
}

/** Looked up once: module scripts run after the document is parsed. */
export const els = {
  serviceState: byId('service-state', HTMLElement),
  serviceStateText: byId('service-state-text', HTMLElement),
  askForm: byId('ask-form', HTMLFormElement),
  question: byId('question', HTMLTextAreaElement),
  k: byId('k', HTMLInputElement),
  ask: byId('ask', HTMLButtonElement),
  stop: byId('stop', HTMLButtonElement),
  askError: byId('ask-error', HTMLElement),
  answer: byId('answer', HTMLElement),
  answerMeta: byId('answer-meta', HTMLElement),
  sourcesSection: byId('sources-section', HTMLElement),
  sources: byId('sources', HTMLOListElement),
  generation: byId('generation', HTMLElement),
  refreshStatus: byId('refresh-status', HTMLButtonElement),
  adminActions: byId('admin-actions', HTMLElement),
  reload: byId('reload', HTMLButtonElement),
  rollback: byId('rollback', HTMLButtonElement),
  adminMessage: byId('admin-message', HTMLElement),
  eventsState: byId('events-state', HTMLElement),
  timeline: byId('timeline', HTMLOListElement),
  timelineNote: byId('timeline-note', HTMLElement),
  keysForm: byId('keys-form', HTMLFormElement),
  apiKey: byId('api-key', HTMLInputElement),
  adminKey: byId('admin-key', HTMLInputElement),
  keysClear: byId('keys-clear', HTMLButtonElement),
  keysMessage: byId('keys-message', HTMLElement),
  docsPanel: byId('docs-panel', HTMLElement),
  docsRefresh: byId('docs-refresh', HTMLButtonElement),
  docsNote: byId('docs-note', HTMLElement),
  docsSummary: byId('docs-summary', HTMLElement),
  uploadForm: byId('upload-form', HTMLFormElement),
  uploadFile: byId('upload-file', HTMLInputElement),
  uploadHint: byId('upload-hint', HTMLElement),
  upload: byId('upload', HTMLButtonElement),
  docsMessage: byId('docs-message', HTMLElement),
  docsList: byId('docs-list', HTMLUListElement),
};

/**
 * What `h` accepts as children: nodes and text; null, undefined and false are left out.
 * @typedef {Node | string | null | undefined | false} Child
 */

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | boolean | undefined> | null} [attrs] `class` sets the class name; true sets an empty attribute
 * @param {Child[]} [children]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function h(tag, attrs, children = []) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) continue;
    if (name === 'class') el.className = String(value);
    else el.setAttribute(name, value === true ? '' : value);
  }
  el.append(...present(children));
  return el;
}

/**
 * The children that are there, for `append` and `replaceChildren` (which would write "null").
 * @param {Child[]} children
 * @returns {Array<Node | string>}
 */
export function present(children) {
  return children.filter(/** @returns {c is Node | string} */ (c) => c !== null && c !== undefined && c !== false);
}

/**
 * A `<time>` for an ISO timestamp, in local time; a dash when there is none.
 * @param {string | null | undefined} iso
 * @param {boolean} [withDate]
 * @returns {Node}
 */
export function timeEl(iso, withDate = false) {
  if (!iso) return document.createTextNode('—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return document.createTextNode(iso);
  const text = withDate
    ? d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return h('time', { datetime: iso, title: iso }, [text]);
}

/** @typedef {{ title: string, detail?: string, code?: string | undefined }} Message */

/**
 * Show a message in a message box (or hide the box when `msg` is null).
 * @param {HTMLElement} el
 * @param {Message | null} msg
 * @param {'error' | 'ok' | 'info'} [tone]
 */
export function showMessage(el, msg, tone = 'error') {
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
