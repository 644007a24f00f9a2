/**
 * transformers.js, imported once for the process. While it is imported, source maps are off:
 * with them on (scripts/start.mjs, like `node --enable-source-maps`) Node reads and decodes the
 * map of every module it loads, and the bundle's 1.5 MB map cost ~0.1 s of every start, for
 * stack traces inside transformers.js that nothing here reads. Our own modules keep theirs.
 */
type Transformers = typeof import('@huggingface/transformers');
let memo: Promise<Transformers> | undefined;

export function importTransformers(): Promise<Transformers> {
  if (!memo) {
    const maps = process.sourceMapsEnabled;
    if (maps) process.setSourceMapsEnabled(false);
    memo = import('@huggingface/transformers');
    if (maps) {
      void memo.then(
        () => process.setSourceMapsEnabled(true),
        () => process.setSourceMapsEnabled(true),
      );
    }
  }
  return memo;
}
