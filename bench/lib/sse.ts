/**
 * Read a server-sent event stream (e.g. /admin/events) with fetch, calling onEvent for each
 * `event:` + `data:` block until the stream ends or the signal aborts. Used by the benchmark and
 * the reload tests.
 */
export function readServerSentEvents(url: string, onEvent: (type: string, data: unknown) => void, signal: AbortSignal): void {
  void fetch(url, { signal }).then(async (res) => {
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true as const }));
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const type = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (type && data) onEvent(type, JSON.parse(data));
      }
    }
  }, () => undefined);
}
