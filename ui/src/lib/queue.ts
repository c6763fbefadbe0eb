// Pure queue logic: applying the engine's batched diffs to the rows the UI shows, and totals.
// Kept free of Svelte and Tauri so it is tested directly.
import { ACTIONS, type Action, type QueueBatch, type UploadState, type QueueRow } from './types';
import { isNetworkCode } from './format';

const byPosition = (a: QueueRow, b: QueueRow) => a.position - b.position || a.id - b.id;

/**
 * The rows the window shows, in queue order, changed in place by the engine's batches.
 * A changed row is replaced (a new object), never mutated, so a row component redraws when
 * its row is new; the array itself is kept: after dropping 100,000 files a copy of it per
 * batch, ten a second, was most of the window's memory.
 */
export class Queue {
  readonly rows: QueueRow[] = [];
  /** Where each id sits in `rows`. */
  private index = new Map<number, number>();

  /** Replaces every row (a snapshot). */
  replace(rows: QueueRow[]) {
    this.rows.length = 0;
    for (const r of rows) this.rows.push(r);
    this.rows.sort(byPosition);
    this.reindex();
  }

  /**
   * Applies a batch; says whether any row changed. O(changes) while rows only change or
   * arrive behind the last one (a dropped folder); a removal or a move re-sorts.
   */
  apply(batch: QueueBatch): boolean {
    if (batch.reset) {
      this.replace(batch.changed);
      return true;
    }
    if (batch.changed.length === 0 && batch.removed.length === 0) return false;
    const rows = this.rows;
    let resort = false;
    for (const v of batch.changed) {
      const i = this.index.get(v.id);
      if (i === undefined) {
        const last = rows[rows.length - 1];
        if (last && byPosition(last, v) > 0) resort = true;
        this.index.set(v.id, rows.length);
        rows.push(v);
      } else {
        if (rows[i].position !== v.position) resort = true;
        rows[i] = v;
      }
    }
    if (batch.removed.length > 0) {
      const gone = new Set(batch.removed);
      let kept = 0;
      for (const r of rows) if (!gone.has(r.id)) rows[kept++] = r;
      rows.length = kept;
    }
    if (resort) rows.sort(byPosition);
    if (resort || batch.removed.length > 0) this.reindex();
    return true;
  }

  private reindex() {
    this.index.clear();
    this.rows.forEach((r, i) => this.index.set(r.id, i));
  }
}

/** The queue's filters, as in Transmission and qBittorrent. */
export type Filter = 'all' | 'active' | 'completed' | 'failed';
export const FILTERS: Filter[] = ['all', 'active', 'completed', 'failed'];
/** Each filter's name on its tab. */
export const FILTER_LABELS: Record<Filter, string> = { all: 'All', active: 'Active', completed: 'Completed', failed: 'Failed' };

/** The filter a state belongs to besides All (cancelled rows are in All only). */
export function filterOf(state: UploadState): Filter | null {
  switch (state) {
    case 'queued':
    case 'uploading':
    case 'waiting_to_retry':
    case 'paused':
      return 'active';
    case 'completed':
      return 'completed';
    case 'failed':
    case 'file_missing':
    case 'file_changed':
    case 'needs_sign_in':
      return 'failed';
    default:
      return null;
  }
}

/**
 * The rows a filter and a search (case-insensitive, in the name) leave. With neither, the
 * queue's own array: no copy of 100,000 rows per redraw.
 */
export function visibleRows(rows: QueueRow[], filter: Filter, search: string): QueueRow[] {
  const needle = search.trim().toLowerCase();
  if (filter === 'all' && needle === '') return rows;
  return rows.filter((r) => (filter === 'all' || filterOf(r.state) === filter) && (needle === '' || r.name.toLowerCase().includes(needle)));
}

export interface Totals {
  /** Rows per filter. */
  filters: Record<Filter, number>;
  count: number;
  /** Rows per state the status bar names. */
  uploading: number;
  retrying: number;
  queued: number;
  paused: number;
  completed: number;
  failed: number;
  /** Rows Pause would act on (queued, uploading or waiting). */
  pausable: number;
  size: number;
  acked: number;
  /** Confirmed plus on the way. */
  sent: number;
  /** Rows waiting because of the network, and the first one's words (one banner for all). */
  offline: number;
  offlineText: string | null;
  offlineNextMs: number | null;
  speed: number;
  eta: number | null;
}

const FAILED: UploadState[] = ['failed', 'file_missing', 'file_changed', 'needs_sign_in'];

/** Summary for the header bar. Cancelled uploads do not count towards bytes. */
export function totals(rows: QueueRow[]): Totals {
  let t: Totals = { filters: { all: rows.length, active: 0, completed: 0, failed: 0 }, count: rows.length, uploading: 0, retrying: 0, queued: 0, paused: 0, completed: 0, failed: 0, pausable: 0, size: 0, acked: 0, sent: 0, offline: 0, offlineText: null, offlineNextMs: null, speed: 0, eta: null };
  for (const r of rows) {
    const f = filterOf(r.state);
    if (f) t.filters[f]++;
    if (r.state === 'uploading') t.uploading++;
    else if (r.state === 'waiting_to_retry') t.retrying++;
    else if (r.state === 'queued') t.queued++;
    else if (r.state === 'paused') t.paused++;
    if (r.state === 'completed') t.completed++;
    if (FAILED.includes(r.state)) t.failed++;
    if (ACTIONS[r.state].includes('pause')) t.pausable++;
    if (r.state !== 'cancelled') {
      t.size += r.size;
      t.acked += Math.min(r.size, r.acked);
      t.sent += Math.min(r.size, r.acked + r.in_flight);
    }
    if (r.state === 'waiting_to_retry' && isNetworkCode(r.error_code)) {
      t.offline++;
      t.offlineText ??= r.error;
      if (r.retry_at_ms !== null) t.offlineNextMs = Math.min(t.offlineNextMs ?? r.retry_at_ms, r.retry_at_ms);
    }
    t.speed += r.speed;
  }
  const remaining = t.size - t.sent;
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

/** What a row's menu can do. */
export type MenuAction = Action | 'details' | 'reveal' | 'top' | 'up' | 'down' | 'bottom' | 'clear' | 'remove';

export interface MenuItem {
  action: MenuAction;
  label: string;
  /** The key that does it on the selected row, if any. */
  key?: string;
}

/**
 * A row's menu: what its state allows (the engine's lifecycle), moving only while it waits
 * its turn, and removal that keeps a completed upload in the history.
 */
export function menuItems(row: QueueRow, index: number, count: number): MenuItem[] {
  const can = actions(row.state);
  const items: MenuItem[] = [];
  if (can.pause) items.push({ action: 'pause', label: 'Pause', key: 'Space' });
  if (can.resume) items.push({ action: 'resume', label: 'Resume', key: 'Space' });
  if (can.retry) items.push({ action: 'retry', label: 'Retry', key: 'R' });
  if (can.restart) items.push({ action: 'restart', label: 'Upload the new content from the start', key: 'R' });
  items.push({ action: 'details', label: 'Details', key: 'Enter' });
  items.push({ action: 'reveal', label: 'Show in folder' });
  if (filterOf(row.state) === 'active' || filterOf(row.state) === 'failed') {
    if (index > 0) {
      items.push({ action: 'top', label: 'Move to top', key: 'Alt+Home' });
      items.push({ action: 'up', label: 'Move up', key: 'Alt+↑' });
    }
    if (index < count - 1) {
      items.push({ action: 'down', label: 'Move down', key: 'Alt+↓' });
      items.push({ action: 'bottom', label: 'Move to bottom', key: 'Alt+End' });
    }
  }
  if (can.cancel) items.push({ action: 'cancel', label: 'Cancel and delete on the server' });
  if (row.state === 'completed') items.push({ action: 'clear', label: 'Remove from the list (kept in History)', key: 'Delete' });
  else items.push({ action: 'remove', label: 'Remove from the list', key: 'Delete' });
  return items;
}

/** The one way a row can go again (Resume, Retry or Restart), if it has one. */
export function goAgain(state: UploadState): 'resume' | 'retry' | 'restart' | null {
  const offered = ACTIONS[state];
  return (['resume', 'retry', 'restart'] as const).find((a) => offered.includes(a)) ?? null;
}

/** The one thing to do about a row that stopped for a reason the person can fix, shown next
 * to its sentence: sign in (the profile's credentials), else what the lifecycle offers to go
 * again (restart a changed file, retry). */
export function fixFor(state: UploadState): { action: 'signin' | 'restart' | 'retry'; label: string } | null {
  if (!FAILED.includes(state)) return null;
  if (state === 'needs_sign_in') return { action: 'signin', label: 'Sign in…' };
  const action = goAgain(state);
  if (action === 'restart') return { action, label: 'Restart' };
  if (action === 'retry') return { action, label: 'Retry' };
  return null;
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
  // Mirrors tusker_core::redact::is_sensitive.
  return /auth|token|secret|signature|passw(or)?d|session|credential|api[-_]?key|cookie|key\s*$/i.test(name.trim());
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

const WARM_STATES: UploadState[] = ['uploading', 'queued', 'completed', 'waiting_to_retry', 'failed', 'paused'];

/**
 * Rows in every common state, mounted once out of sight while the window is idle: the first
 * real mount (the first rows of a drop, often while the engine keeps both cores busy) then no
 * longer pays for parsing and first runs of the row's code (it took 200 ms, 90 ms after).
 */
export function warmUpRows(count: number): QueueRow[] {
  return Array.from({ length: count }, (_, i) => {
    const state = WARM_STATES[i % WARM_STATES.length];
    return {
      id: -1 - i,
      position: i,
      path: `/warm-up/${i}.bin`,
      name: `${i}.bin`,
      size: 65536,
      state,
      error: state === 'failed' ? 'server error' : null,
      acked: state === 'completed' ? 65536 : 4096,
      in_flight: state === 'uploading' ? 4096 : 0,
      speed: state === 'uploading' ? 1 << 20 : 0,
      eta_secs: state === 'uploading' ? 1 : null,
      retry_at_ms: state === 'waiting_to_retry' ? 0 : null,
      recreated: 0,
      resent: 0,
      note: null,
      error_code: state === 'failed' ? 'http.5xx' : null,
      profile: 'warm-up',
      asks_host: null,
    };
  });
}
