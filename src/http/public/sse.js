// @ts-check
// Server-sent events, read with fetch + ReadableStream rather than EventSource so that requests
// can carry an Authorization header.

/** @typedef {{ event: string, data: string }} SseEvent */

/**
 * Parse a text/event-stream body: yields { event, data } per dispatched event. Comments
 * (keep-alive pings) and fields other than `event` and `data` are skipped; the reader is
 * cancelled when the loop over it ends early.
 * @param {ReadableStream<Uint8Array>} body
 * @returns {AsyncGenerator<SseEvent, void, undefined>}
 */
export async function* readSse(body) {
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

/**
 * The event's data as a JSON object, or null when it is not one (such as the chat stream's `[DONE]`).
 * @param {SseEvent} ev
 * @returns {object | null}
 */
export function jsonData(ev) {
  try {
    const value = /** @type {unknown} */ (JSON.parse(ev.data));
    return typeof value === 'object' && value !== null ? value : null;
  } catch {
    return null;
  }
}
