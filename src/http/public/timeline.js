// @ts-check
// The reload timeline, fed by GET /admin/events (server-sent events) for as long as the page lives:
// reconnects with backoff, and polls the status meanwhile (or while the admin key is missing).
import { els, h, timeEl } from './dom.js';
import { apiError, request } from './http.js';
import { jsonData, readSse } from './sse.js';
import { refreshStatus, renderGeneration, renderStatus, setServiceState } from './status.js';
/** @import { Child } from './dom.js' */
/** @import { SseEvent } from './sse.js' */
/** @import { AdminStatus, ReloadAttempt, ReloadEvent, ReloadEventName, ReloadOutcome } from './wire.js' */

const TIMELINE_MAX = 200;
const POLL_MS = 5000;

/** @type {Record<ReloadEventName, string>} */
const EVENT_LABEL = {
  'reload.started': 'Reload started',
  'reload.accepted': 'Accepted',
  'reload.rejected': 'Rejected',
  'reload.superseded': 'Superseded',
  'reload.unchanged': 'Unchanged',
  'reload.rolled_back': 'Rolled back',
  'generation.retired': 'Retired',
  'chroma.restarted': 'Chroma restarted',
};
/** @type {Record<ReloadOutcome, ReloadEventName>} */
const OUTCOME_EVENT = { accepted: 'reload.accepted', rejected: 'reload.rejected', superseded: 'reload.superseded', unchanged: 'reload.unchanged', rolled_back: 'reload.rolled_back' };

/** @type {AbortController | null} the events stream being followed */
let eventsAbort = null;
/** @type {number | undefined} */
let pollTimer;
/** @type {Set<number>} attempt ids already in the timeline (the stream's `status` repeats them) */
const shownAttempts = new Set();
/** @type {HTMLLIElement | null} the "Reload started" entry of the build in progress */
let pendingEntry = null;

/** @param {'connecting' | 'live' | 'reconnecting' | 'locked' | 'offline'} value */
function setEventsState(value) {
  els.eventsState.dataset.state = value;
  els.eventsState.textContent = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', locked: 'admin key needed', offline: 'offline' }[value];
}

/** @param {HTMLLIElement} li @param {boolean} [atTop] */
function addTimelineEntry(li, atTop = true) {
  const empty = els.timeline.querySelector('.tl-empty');
  if (empty) empty.remove();
  if (atTop) els.timeline.prepend(li);
  else els.timeline.append(li);
  while (els.timeline.children.length > TIMELINE_MAX) els.timeline.lastElementChild?.remove();
}

/**
 * @param {ReloadEventName} type
 * @param {string} at ISO time
 * @param {Child[]} body
 * @param {Child[]} [error]
 */
function timelineItem(type, at, body, error) {
  const tone = type.replace(/^.*\./, '');
  return h('li', { class: `tl tl-${tone}`, 'data-type': type }, [
    h('div', { class: 'tl-head' }, [h('span', { class: 'badge' }, [EVENT_LABEL[type] ?? type]), timeEl(at)]),
    body.length ? h('p', { class: 'tl-body' }, body) : null,
    error ? h('p', { class: 'tl-error' }, error) : null,
  ]);
}

/** @param {ReloadAttempt} attempt @param {string} [at] default: when the attempt started */
function attemptItem(attempt, at) {
  const type = OUTCOME_EVENT[attempt.outcome] ?? /** @type {ReloadEventName} */ (`reload.${attempt.outcome}`);
  /** @type {Child[]} */
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

/** @param {string} at ISO time */
function showPending(at) {
  clearPending();
  pendingEntry = timelineItem('reload.started', at, ['validating and building a new generation…']);
  pendingEntry.classList.add('tl-pending');
  addTimelineEntry(pendingEntry);
}

function clearPending() {
  pendingEntry?.remove();
  pendingEntry = null;
}

/** @param {ReloadAttempt} attempt @param {string} [at] */
function showAttempt(attempt, at) {
  if (shownAttempts.has(attempt.id)) return;
  shownAttempts.add(attempt.id);
  addTimelineEntry(attemptItem(attempt, at));
}

/** @param {AdminStatus} status */
function seedTimeline(status) {
  const history = Array.isArray(status.history) ? [...status.history].reverse() : []; // oldest first
  for (const attempt of history) showAttempt(attempt);
  if (status.reloading && !pendingEntry) showPending(new Date().toISOString());
  if (!els.timeline.children.length) els.timeline.append(h('li', { class: 'tl-empty' }, ['No reload attempts yet.']));
}

/** @param {SseEvent} ev */
function handleEvent(ev) {
  const data = jsonData(ev);
  if (!data) return;
  if (ev.event === 'status') {
    const status = /** @type {AdminStatus} */ (data);
    renderStatus(status);
    seedTimeline(status);
    return;
  }
  const e = /** @type {ReloadEvent} */ (data);
  switch (ev.event) {
    case 'reload.started':
      showPending(e.at);
      return;
    case 'reload.accepted':
    case 'reload.rejected':
    case 'reload.superseded':
    case 'reload.unchanged':
    case 'reload.rolled_back':
      clearPending();
      if (e.attempt) showAttempt(e.attempt, e.at);
      if (ev.event === 'reload.accepted' || ev.event === 'reload.rolled_back') {
        if (e.generation) {
          renderGeneration(e.generation);
          setServiceState('ok', `Ready · ${e.generation.store.version}`);
        }
        void refreshStatus();
      }
      return;
    case 'generation.retired':
    case 'chroma.restarted': {
      const g = e.generation;
      const body = g ? ['generation ', h('code', null, [g.id]), ' · store ', h('code', null, [g.store?.version ?? '?'])] : [];
      addTimelineEntry(timelineItem(ev.event, e.at, body));
      return;
    }
    default:
  }
}

function startPolling() {
  if (pollTimer !== undefined) return;
  pollTimer = window.setInterval(() => {
    if (document.visibilityState === 'visible') void refreshStatus();
  }, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== undefined) window.clearInterval(pollTimer);
  pollTimer = undefined;
}

/**
 * Resolves after `ms`, or at once when `signal` aborts.
 * @param {number} ms @param {AbortSignal} signal
 * @returns {Promise<void>}
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });
}

/** Follow /admin/events for as long as the page lives; reconnect with backoff. A second call replaces the first (new keys). */
export async function followEvents() {
  eventsAbort?.abort();
  const controller = new AbortController();
  eventsAbort = controller;
  const { signal } = controller;
  let delay = 1000;
  while (!signal.aborted) {
    setEventsState('connecting');
    try {
      const res = await request('/admin/events', { kind: 'admin', accept: 'text/event-stream', signal });
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
    } catch {
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
