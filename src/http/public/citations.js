// @ts-check
// Citations in an answer: [n] and [n, m] become links to the numbered source cards; following one
// moves focus to its card.
import { els, h } from './dom.js';

const CITATION = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

/** Appends streamed answer text, turning [n] / [n, m] into links to the source cards. */
export class AnswerWriter {
  /**
   * @param {HTMLElement} container
   * @param {number} sourceCount citations above this number stay plain text
   */
  constructor(container, sourceCount) {
    this.container = container;
    this.sourceCount = sourceCount;
    /** Text held back because a citation may still be arriving. */
    this.pending = '';
    /** All the text written so far. */
    this.text = '';
    /** @type {Set<number>} the source numbers cited so far */
    this.cited = new Set();
  }

  /** @param {string} piece */
  push(piece) {
    this.pending += piece;
    // Hold back a citation that may still be arriving ("[1" ... "2]").
    const open = this.pending.lastIndexOf('[');
    let cut = this.pending.length;
    if (open >= 0 && this.pending.indexOf(']', open) < 0 && this.pending.length - open < 16) cut = open;
    this.emit(this.pending.slice(0, cut));
    this.pending = this.pending.slice(cut);
  }

  flush() {
    this.emit(this.pending);
    this.pending = '';
  }

  /** @param {string} text */
  emit(text) {
    if (!text) return;
    this.text += text;
    let last = 0;
    for (const m of text.matchAll(CITATION)) {
      const nums = (m[1] ?? '').split(',').map((s) => Number(s.trim()));
      if (!nums.every((n) => n >= 1 && n <= this.sourceCount)) continue;
      if (m.index > last) this.container.append(text.slice(last, m.index));
      const cite = h('span', { class: 'cite' }, ['[']);
      nums.forEach((n, i) => {
        if (i) cite.append(', ');
        this.cited.add(n);
        cite.append(h('a', { href: `#source-${n}`, 'aria-label': `source ${n}`, 'data-source': String(n) }, [String(n)]));
      });
      cite.append(']');
      this.container.append(cite);
      last = m.index + m[0].length;
    }
    if (last < text.length) this.container.append(text.slice(last));
  }
}

/**
 * Mark the source cards the answer cited.
 * @param {Set<number>} cited
 */
export function markCited(cited) {
  for (const li of els.sources.children) {
    const n = Number(li.id.replace('source-', ''));
    li.classList.toggle('cited', cited.has(n));
  }
}

/** Citation links move focus to their source card (and keep the page's scroll smooth). */
export function initCitations() {
  els.answer.addEventListener('click', (e) => {
    const a = e.target instanceof Element ? e.target.closest('a[data-source]') : null;
    if (!a) return;
    const card = document.getElementById(`source-${a.getAttribute('data-source')}`);
    if (!card) return;
    e.preventDefault();
    const smooth = !window.matchMedia('(prefers-reduced-motion: reduce)').matches;
    card.scrollIntoView({ behavior: smooth ? 'smooth' : 'auto', block: 'nearest' });
    card.focus({ preventScroll: true });
    card.classList.remove('flash');
    void card.offsetWidth; // restart the highlight animation
    card.classList.add('flash');
  });
}
