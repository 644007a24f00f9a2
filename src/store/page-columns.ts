import type { RecordPage } from './chroma-pages.js';
import { MetadataColumnBuilder, type MetadataColumnData } from './metadata-columns.js';
import { TextColumnBuilder, type TextColumnData } from './record-columns.js';
import { VectorRows } from './simd-kernel.js';

/**
 * A collection's records joined page by page as they are read (chroma-pages.ts readRecordPages):
 * ids, texts and metadata into columns, the vectors into one matrix. The build thread fills one to
 * send the event loop, the publisher one to write serving-index.bin: the same code, so a version's
 * serving index holds what a load through Chroma gives.
 */
export class PageColumns {
  readonly vectors: Float32Array;
  /** The SIMD kernel's memory `vectors` is a view of (asked for, and the kernel can serve these rows), or null. */
  readonly kernelRows: VectorRows | null;
  private readonly ids: TextColumnBuilder;
  private readonly documents: TextColumnBuilder;
  private readonly metadata: MetadataColumnBuilder;
  private rows = 0;

  constructor(count: number, private readonly dimension: number, inKernelMemory = false) {
    this.kernelRows = inKernelMemory ? VectorRows.allocate(count, dimension) : null;
    this.vectors = this.kernelRows?.rows ?? new Float32Array(count * dimension);
    this.ids = new TextColumnBuilder(count);
    this.documents = new TextColumnBuilder(count);
    this.metadata = new MetadataColumnBuilder(count);
  }

  /** One page, its texts as given (`documents`: the page's, a missing one as ''). */
  add(page: RecordPage, documents: readonly string[]): void {
    // parseGetResponse checked every vector's length and that there is one per id.
    if (!page.embeddings) throw new Error('a page of records came without its embeddings');
    this.vectors.set(page.embeddings, this.rows * this.dimension);
    for (let i = 0; i < page.ids.length; i++) {
      this.ids.add(page.ids[i]!);
      this.documents.add(documents[i]!);
      this.metadata.add(page.metadatas[i] as Record<string, unknown> | null);
    }
    // Texts are joined as each page ends (ids, small, at the segment limits: fewer messages).
    this.documents.endPage();
    this.rows += page.ids.length;
  }

  finish(): { ids: TextColumnData; documents: TextColumnData; metadata: MetadataColumnData } {
    return { ids: this.ids.finish(), documents: this.documents.finish(), metadata: this.metadata.finish() };
  }
}
