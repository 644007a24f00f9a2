import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOTSTRAP_MODEL_FILES } from '../../src/embeddings/bootstrap-model.js';
import { bootstrapModelModule } from '../../tools/static-model/write-bootstrap-model.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the committed bootstrap model (src/embeddings/bootstrap-model.ts)', () => {
  it('is byte for byte what tools/static-model/ makes (regenerate: node dist/tools/static-model/write-bootstrap-model.js)', async () => {
    const committed = await readFile(join(ROOT, 'src', 'embeddings', 'bootstrap-model.ts'), 'utf8');
    expect(committed).toBe(await bootstrapModelModule());
  });

  it('holds a loadable model folder: config, tokenizer files and the fp32 ONNX graph', () => {
    expect(BOOTSTRAP_MODEL_FILES.map((f) => f.rel)).toEqual(['config.json', 'onnx/model.onnx', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    const config = JSON.parse(BOOTSTRAP_MODEL_FILES.find((f) => f.rel === 'config.json')!.text!) as Record<string, unknown>;
    expect(config).toMatchObject({ hidden_size: 2, vocab_size: 3, rag_static_model: { bootstrap: true } });
    const onnx = Buffer.from(BOOTSTRAP_MODEL_FILES.find((f) => f.rel === 'onnx/model.onnx')!.base64!, 'base64');
    expect(onnx.length).toBeGreaterThan(100);
    expect(onnx.includes(Buffer.from('rag-static-model-builder'))).toBe(true);
  });
});
