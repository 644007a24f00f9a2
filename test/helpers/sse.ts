/**
 * Read a server-sent event stream (e.g. /admin/events) for a test: calls onEvent with each
 * `event:` + `data:` block until the stream ends or the signal aborts. Tests keep their own
 * reader so that no test imports benchmark code.
 */
export function readServerSentEvents(url: string, onEvent: (type: string, data: unknown) => void, signal: AbortSignal): void {
  void (async () => {
    const res = await fetch(url, { signal, headers: { accept: 'text/event-stream' } });
    if (!res.ok || !res.body) throw new Error(`${url}: HTTP ${res.status}, not an event stream`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
        const fields = new Map(
          buf
            .slice(0, end)
            .split('\n')
            .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()] as const),
        );
        buf = buf.slice(end + 2);
        const type = fields.get('event');
        const data = fields.get('data');
        if (type && data) onEvent(type, JSON.parse(data));
      }
    }
  })().catch((err: unknown) => {
    if (!signal.aborted) throw err;
  });
}
