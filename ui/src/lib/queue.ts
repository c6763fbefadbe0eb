// Pure queue logic: applying the engine's batched diffs to the rows the UI shows, and totals.
// Kept free of Svelte and Tauri so it is tested directly.
import { ACTIONS, type QueueBatch, type UploadState, type QueueRow } from './types';

const byPosition = (a: QueueRow, b: QueueRow) => a.position - b.position || a.id - b.id;

/** Where each id sits in an array applyBatch returned, so the next batch does not index
 * 100,000 rows again (the array is never mutated, so the index stays true for it). */
const indexes = new WeakMap<QueueRow[], Map<number, number>>();

function indexOf(rows: QueueRow[]): Map<number, number> {
  let index = indexes.get(rows);
  if (!index) {
    index = new Map();
    rows.forEach((r, i) => index!.set(r.id, i));
  }
  return index;
}

/**
 * Returns the rows after a batch. Rows are replaced, never mutated, so the result can be
 * handed to a non-deep reactive store. O(changes) plus a copy of the array while rows only
 * change or arrive behind the last one (a dropped folder); a removal or a move re-sorts.
 */
export function applyBatch(rows: QueueRow[], batch: QueueBatch): QueueRow[] {
  if (batch.reset) return batch.changed.slice().sort(byPosition);
  if (batch.changed.length === 0 && batch.removed.length === 0) return rows;
  // The new array takes the old one's index over (a later batch applied to the old array,
  // which the window never does, indexes it afresh).
  const index = indexOf(rows);
  indexes.delete(rows);
  const next = rows.slice();
  let resort = false;
  for (const v of batch.changed) {
    const i = index.get(v.id);
    if (i === undefined) {
      const last = next[next.length - 1];
      if (last && byPosition(last, v) > 0) resort = true;
      index.set(v.id, next.length);
      next.push(v);
    } else {
      if (next[i].position !== v.position) resort = true;
      next[i] = v;
    }
  }
  let out = next;
  if (batch.removed.length > 0) {
    const gone = new Set(batch.removed);
    out = out.filter((r) => !gone.has(r.id));
  }
  if (resort) out.sort(byPosition);
  if (out === next && !resort) indexes.set(out, index);
  return out;
}

export interface Totals {
  count: number;
  active: number;
  completed: number;
  failed: number;
  size: number;
  acked: number;
  speed: number;
  eta: number | null;
}

const FAILED: UploadState[] = ['failed', 'file_missing', 'file_changed', 'needs_sign_in'];

/** Summary for the header bar. Cancelled uploads do not count towards bytes. */
export function totals(rows: QueueRow[]): Totals {
  let t: Totals = { count: rows.length, active: 0, completed: 0, failed: 0, size: 0, acked: 0, speed: 0, eta: null };
  for (const r of rows) {
    if (r.state === 'uploading' || r.state === 'waiting_to_retry') t.active++;
    if (r.state === 'completed') t.completed++;
    if (FAILED.includes(r.state)) t.failed++;
    if (r.state !== 'cancelled') {
      t.size += r.size;
      t.acked += Math.min(r.size, r.acked);
    }
    t.speed += r.speed;
  }
  const remaining = t.size - t.acked;
  t.eta = t.speed > 1 && remaining > 0 ? remaining / t.speed : null;
  return t;
}

/** Which actions a row offers in its state: the engine's lifecycle decides (ACTIONS is generated). */
export function actions(state: UploadState) {
  const offered = ACTIONS[state];
  return {
    pause: offered.includes('pause'),
    resume: offered.includes('resume'),
    retry: offered.includes('retry'),
    restart: offered.includes('restart'),
    cancel: offered.includes('cancel'),
  };
}

/** The one way a row can go again (Resume, Retry or Restart), if it has one. */
export function goAgain(state: UploadState): 'resume' | 'retry' | 'restart' | null {
  const offered = ACTIONS[state];
  return (['resume', 'retry', 'restart'] as const).find((a) => offered.includes(a)) ?? null;
}

/** The fraction of a row's progress bar: acknowledged bytes, plus the in-flight estimate. */
export function progress(r: QueueRow): { acked: number; inFlight: number } {
  if (r.size === 0) return { acked: r.state === 'completed' ? 1 : 0, inFlight: 0 };
  const acked = Math.min(1, r.acked / r.size);
  const inFlight = Math.min(1 - acked, r.in_flight / r.size);
  return { acked, inFlight };
}

/** Header names whose values are secrets (mirrors the engine's rule; the shell decides). */
export function looksSecret(name: string): boolean {
  return /auth|token|secret|api-?key|password|session|cookie/i.test(name);
}

/** The question the window asks about another host: the first failed row that names one,
 * and how many failed rows of the same profile ask about the same host (one answer serves
 * them all). */
export function hostQuestion(rows: QueueRow[]): { row: QueueRow; count: number } | null {
  const asks = (r: QueueRow) => r.state === 'failed' && r.asks_host !== null;
  const row = rows.find(asks);
  if (!row) return null;
  const count = rows.filter((r) => asks(r) && r.asks_host === row.asks_host && r.profile === row.profile).length;
  return { row, count };
}
