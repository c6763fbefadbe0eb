// The queue list's window onto its rows: only the rows in view (and a few either side) are
// mounted, so 100,000 rows cost what a screenful does. Kept apart from the DOM it reads
// (the list element comes from QueueList.svelte) so AppState and the keys can move it.
import type { QueueRow } from './types';

/** Every row is this tall (px); the list's height and offsets are computed from it. */
export const ROW_HEIGHT = 64;
/** Rows mounted beyond each edge of the view, so a scroll does not show a blank first. */
export const OVERSCAN = 8;

export class QueueListView {
  /** The rows the list shows (the filtered queue), read when the window onto them moves. */
  readonly #rows: () => QueueRow[];
  // Kept here, not in the list element: the element is re-created after Settings or the
  // empty state, and QueueList.svelte puts the position back.
  scrollTop = $state(0);
  viewHeight = $state(600);
  el: HTMLDivElement | undefined = $state();
  // Rows mounted at most: the first rows of a drop arrive while the machine is busiest, and
  // mounting a screenful in one go held the page ~60 ms there. They come a few per frame.
  mountBudget = $state(Infinity);
  first = $derived(Math.max(0, Math.floor(this.scrollTop / ROW_HEIGHT) - OVERSCAN));
  // `.by`: the rows are only there once the constructor ran (derived values are read later).
  last = $derived.by(() => Math.min(this.#rows().length, Math.ceil((this.scrollTop + this.viewHeight) / ROW_HEIGHT) + OVERSCAN));
  visible = $derived.by(() => this.#rows().slice(this.first, Math.min(this.last, this.first + this.mountBudget)));

  constructor(rows: () => QueueRow[]) {
    this.#rows = rows;
  }

  /** The list's height, told after layout: `bind:clientHeight` reads it while mounting, which
   * lays the whole page out inside the task that brings the first rows. */
  watchHeight = (el: HTMLElement) => {
    const observer = new ResizeObserver(() => (this.viewHeight = el.clientHeight));
    observer.observe(el);
    return () => observer.disconnect();
  };

  mountGradually() {
    this.mountBudget = 4;
    const more = () => {
      this.mountBudget = this.mountBudget >= 12 ? Infinity : this.mountBudget + 4;
      if (this.mountBudget !== Infinity) requestAnimationFrame(more);
    };
    requestAnimationFrame(more);
  }

  /** Scrolls just enough for the row at `index` to be in view. */
  scrollTo(index: number) {
    const top = index * ROW_HEIGHT;
    const el = this.el;
    if (el) {
      if (top < el.scrollTop) el.scrollTop = top;
      else if (top + ROW_HEIGHT > el.scrollTop + this.viewHeight) el.scrollTop = top + ROW_HEIGHT - this.viewHeight;
    }
  }

  /** The mounted element of a row, if it is in view. */
  rowElement(id: number): Element | null {
    return this.el?.querySelector(`.row[data-id="${id}"]`) ?? null;
  }
}
