// Formatting for people: sizes, speeds, durations, state labels.
import type { UploadState } from './types';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '—';
  let v = n;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

export function speed(bps: number): string {
  return bps > 0 ? `${bytes(Math.round(bps))}/s` : '';
}

export function duration(secs: number | null): string {
  if (secs === null || !Number.isFinite(secs)) return '';
  const s = Math.max(0, Math.round(secs));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  return `${h}h ${m % 60}m`;
}

const LABELS: Record<UploadState, string> = {
  queued: 'Queued',
  uploading: 'Uploading',
  paused: 'Paused',
  waiting_to_retry: 'Waiting to retry',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
  file_missing: 'File missing',
  file_changed: 'File changed',
  needs_sign_in: 'Needs sign-in',
};

/** Network trouble (the window shows one banner for every row waiting on it). */
export function isNetworkCode(code: string | null | undefined): boolean {
  return !!code && (code.startsWith('network.') || code === 'stalled');
}

const BUSY_CODES = ['http.429', 'http.5xx', 'http.423', 'no_answer'];

/** When the next try is: "in 12 s", or past a minute and a half the clock time. */
export function nextTry(retryAtMs: number, nowMs: number): string {
  const left = Math.max(0, Math.ceil((retryAtMs - nowMs) / 1000));
  if (left <= 90) return `in ${left} s`;
  const at = new Date(retryAtMs);
  return `at ${String(at.getHours()).padStart(2, '0')}:${String(at.getMinutes()).padStart(2, '0')}`;
}

/** A row's state in words: waiting states say why and until when. */
export function stateLabel(state: UploadState, retryAtMs: number | null, nowMs: number, code: string | null = null): string {
  if (state === 'waiting_to_retry') {
    const when = retryAtMs !== null ? nextTry(retryAtMs, nowMs) : 'soon';
    if (isNetworkCode(code)) return `Waiting for the network (next try ${when})`;
    if (code === 'journal_busy') return `Waiting for the journal (next try ${when})`;
    if (code && BUSY_CODES.includes(code)) return `Server busy, retrying ${when}`;
    return `Retrying ${when}`;
  }
  return LABELS[state];
}

/** Parses a size typed by a person: "8", "8 MiB", "512k", "1.5GB". Empty → null. */
export function parseSize(text: string, defaultUnit = 1024 * 1024): number | null {
  const t = text.trim();
  if (t === '') return null;
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(t);
  if (!m) return NaN;
  const n = parseFloat(m[1]);
  const unit = m[2].toLowerCase();
  const mult: Record<string, number> = {
    '': defaultUnit,
    b: 1,
    k: 1024,
    kib: 1024,
    kb: 1000,
    m: 1024 ** 2,
    mib: 1024 ** 2,
    mb: 1e6,
    g: 1024 ** 3,
    gib: 1024 ** 3,
    gb: 1e9,
  };
  if (!(unit in mult)) return NaN;
  return Math.round(n * mult[unit]);
}
