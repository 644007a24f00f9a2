/** One tokenised text: what the tokenizer returns (after truncation). */
export interface EncodedRow {
  input_ids: number[];
  attention_mask: number[];
  token_type_ids?: number[];
}

/** A batch padded to its longest row, as the model's int64 inputs ([rows x width]; the attention mask also serves pooling). */
export interface PaddedBatch {
  width: number;
  inputIds: BigInt64Array;
  attentionMask: BigInt64Array;
  /** Null when the first row has none (the model takes no token types). */
  tokenTypeIds: BigInt64Array | null;
}

/**
 * Pad every row to the longest (at least 1 token) with `padId` (input ids) or 0 (mask, token
 * types; a row without token types gets zeros), after its tokens or, with `left`, before them.
 * Written element by element into the typed arrays: the model is called once a request, and the
 * spread and flatMap form cost ~6 us of a ~250 us request (a `--cpu-prof` at c=16).
 */
export function padBatch(rows: readonly EncodedRow[], left: boolean, padId: number): PaddedBatch {
  let width = 1;
  for (const r of rows) width = Math.max(width, r.input_ids.length);
  const size = rows.length * width;
  // Row i's n tokens start at i * width, or at (i + 1) * width - n when padded on the left.
  const startOf = (i: number, n: number) => i * width + (left ? width - n : 0);
  const int64 = (key: keyof EncodedRow, pad: number): BigInt64Array => {
    const data = new BigInt64Array(size);
    if (pad !== 0) data.fill(BigInt(pad));
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const xs = row[key];
      const n = row.input_ids.length;
      const at = startOf(i, n);
      for (let j = 0; j < n; j++) data[at + j] = xs ? BigInt(xs[j] ?? 0) : 0n;
    }
    return data;
  };
  return {
    width,
    inputIds: int64('input_ids', padId),
    attentionMask: int64('attention_mask', 0),
    tokenTypeIds: rows[0]?.token_type_ids ? int64('token_type_ids', 0) : null,
  };
}
