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

/** A service event as received: its type, its data's fields and when it arrived (ms since the epoch). */
export type ReceivedEvent<A = { storeVersion: string | null; outcome?: string }> = { type: string; receivedAt: number; attempt?: A };

/** Every event of the service's /admin/events stream from now on, appended as it arrives, until the signal aborts. */
export function recordServiceEvents<A = { storeVersion: string | null; outcome?: string }>(serviceUrl: string, signal: AbortSignal): Array<ReceivedEvent<A>> {
  const events: Array<ReceivedEvent<A>> = [];
  readServerSentEvents(`${serviceUrl}/admin/events`, (type, data) => events.push({ ...(data as object), type, receivedAt: Date.now() }), signal);
  return events;
}

/** Write -> serving (ms) of each published version that was accepted: from its publication to its `reload.accepted` event. */
export function writeToServingMs(events: Array<ReceivedEvent<{ storeVersion: string | null }>>, published: Array<{ version: string; at: number }>): number[] {
  return published.flatMap((p) => {
    const e = events.find((x) => x.type === 'reload.accepted' && x.attempt?.storeVersion === p.version);
    return e ? [e.receivedAt - p.at] : [];
  });
}
