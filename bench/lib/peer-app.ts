import type { Server } from 'node:http';
import express from 'express';
import type { DocumentInterface } from '@langchain/core/documents';
import chokidar from 'chokidar';

/**
 * The HTTP side every LangChain.js peer shares: POST /v1/retrieve asks whatever retriever the peer
 * holds right now (the global the peer swaps on reload), and the process logs "<name> listening <port>".
 */
export function servePeer(name: string, port: number, current: () => { invoke(q: string): Promise<DocumentInterface[]> }): Server {
  const app = express();
  app.use(express.json());
  app.post('/v1/retrieve', async (req, res) => {
    try {
      const docs = await current().invoke(String(req.body.question));
      res.json({ sources: docs.map((d) => ({ text: d.pageContent, metadata: d.metadata })) });
    } catch (err) {
      res.status(500).json({ error: String(err) });
    }
  });
  const http = app.listen(port, '127.0.0.1', () => {
    const addr = http.address();
    console.log(`${name} listening ${typeof addr === 'object' && addr ? addr.port : ''}`);
  });
  return http;
}

/**
 * The reload loop every peer shares (the blogged design): on any change under the store folder,
 * run `reload` once at a time (changes during a reload are dropped, as those designs do), logging
 * "reloaded" or the failure; the peer's own `reload` decides what the swap is.
 */
export function reloadOnChange(storeDir: string, reload: () => Promise<void>): void {
  let reloading = false;
  chokidar.watch(storeDir, { ignoreInitial: true }).on('all', async () => {
    if (reloading) return;
    reloading = true;
    try {
      await reload();
      console.log('reloaded');
    } catch (err) {
      console.error('reload failed', err);
    } finally {
      reloading = false;
    }
  });
}

