// @ts-check
// Asking: POST /v1/chat/completions with `stream: true`, the answer written as it arrives, the
// source cards, and which generation answered.
import { AnswerWriter, initCitations, markCited } from './citations.js';
import { els, h, showMessage } from './dom.js';
import { NetworkError, apiError, describeError, errorText, isAbort, request } from './http.js';
import { jsonData, readSse } from './sse.js';
/** @import { Message } from './dom.js' */
/** @import { ChatChunk, ChatCompletion, GenerationRef, Source } from './wire.js' */

/** @type {AbortController | null} the question being answered, to stop it */
let askAbort = null;

/** @param {Source[]} sources */
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

/** @param {GenerationRef | undefined} gen */
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

/** @param {string} question */
async function ask(question) {
  askAbort?.abort();
  const controller = new AbortController();
  askAbort = controller;
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
  /** @param {Message} msg */
  const fail = (msg) => {
    showMessage(els.askError, msg);
    if (!writer.text) els.answer.replaceChildren(h('p', { class: 'placeholder' }, ['No answer.']));
    setAnswerState('error');
  };
  try {
    const res = await request('/v1/chat/completions', { method: 'POST', body, kind: 'api', signal: controller.signal });
    if (!res.ok) return fail(describeError(await apiError(res), 'api'));
    if (!res.body || !(res.headers.get('content-type') ?? '').includes('text/event-stream')) {
      // A non-streaming answer (a proxy may buffer): render it whole.
      const json = /** @type {ChatCompletion} */ (await res.json());
      const sources = json.sources ?? [];
      renderSources(sources);
      writer = new AnswerWriter(els.answer, sources.length);
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
      const chunk = /** @type {ChatChunk | null} */ (jsonData(ev));
      if (!chunk) continue;
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
    if (isAbort(err)) {
      if (askAbort === controller) {
        els.answer.append(h('span', { class: 'stopped' }, [' (stopped)']));
        setAnswerState('stopped');
      }
      return;
    }
    // A stream cut mid-way surfaces here as a TypeError from reader.read().
    fail(describeError(err instanceof NetworkError ? err : new NetworkError(errorText(err)), 'api'));
  } finally {
    if (askAbort === controller) askAbort = null;
  }
}

/** The question form: Enter asks, Shift+Enter adds a line, Stop aborts the answer. */
export function initAsk() {
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
    askAbort?.abort();
    els.question.focus();
  });

  initCitations();
}
