/**
 * A replaced generation is released: once it is disposed, nothing in the service keeps it (or its
 * in-process index) reachable. Found with heap snapshots of `npm run swap-probe -- --swaps 100`:
 * an abort listener left on a build phase's signal kept that build's request, and through it the
 * generation it replaced, so every generation kept the one before alive (RSS grew ~7.5 MiB per
 * swap at 10k chunks). Real service, real Chroma, real swaps; a WeakRef per generation and a full
 * garbage collection (exposed at run time) decide.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, publishDocs, startTestService, tempDir, waitFor, writeEditionDocs, type TestService } from '../helpers/harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let svc: TestService;
let docsRoot: Awaited<ReturnType<typeof tempDir>>;

beforeAll(async () => {
  docsRoot = await tempDir('rag-t-release-');
  svc = await startTestService({ env: { WATCH: 'false' }, docs: await writeEditionDocs(docsRoot.dir, 0) });
});

afterAll(async () => {
  await svc?.stop();
  await docsRoot?.cleanup();
});

describe('replaced generations', () => {
  it('are garbage once disposed: after four swaps only the active generation and at most its predecessor remain', async () => {
    const refs: Array<{ id: string; ref: WeakRef<object> }> = [];
    for (let n = 1; n <= 4; n++) {
      const replaced = svc.service.manager.current!;
      refs.push({ id: replaced.id, ref: new WeakRef(replaced) });
      const version = `edition-${n}`;
      await publishDocs(svc.dirs.store, await writeEditionDocs(docsRoot.dir, n), { version });
      await svc.service.manager.reload('test');
      await waitFor(async () => (await getJson(`${svc.url}/admin/status`)).active?.store.version === version, 20_000, `swap to ${version}`);
    }
    // Retirees are disposed once their leases end; then nothing should hold them.
    await waitFor(async () => {
      gc();
      await new Promise((r) => setTimeout(r, 50));
      gc();
      return refs.slice(0, -1).every((r) => r.ref.deref() === undefined) || null;
    }, 15_000, 'replaced generations collected').catch(() => undefined);
    const alive = refs.filter((r) => r.ref.deref() !== undefined).map((r) => r.id);
    // The last one replaced may still be draining or referenced by the status; none before it.
    expect(alive.filter((id) => id !== refs.at(-1)!.id)).toEqual([]);
  });
});
