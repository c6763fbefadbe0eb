import { describe, expect, it } from 'vitest';
import { Queue, actions, fixFor, hostQuestion, looksSecret, menuItems, progress, totals, visibleRows, warmUpRows } from './queue';
import { ACTIONS, type QueueRow } from './types';

function view(id: number, over: Partial<QueueRow> = {}): QueueRow {
  return {
    id,
    position: id,
    path: `/tmp/f${id}`,
    name: `f${id}`,
    size: 1000,
    state: 'queued',
    error: null,
    acked: 0,
    in_flight: 0,
    speed: 0,
    eta_secs: null,
    retry_at_ms: null,
    recreated: 0,
    resent: 0,
    note: null,
    profile: null,
    asks_host: null,
    error_code: null,
    ...over,
  };
}

describe('Queue', () => {
  function queue(rows: QueueRow[]) {
    const q = new Queue();
    q.replace(rows);
    return q;
  }
  const ids = (q: Queue) => q.rows.map((r) => r.id);

  it('adds, updates and removes rows, replacing a changed row instead of mutating it', () => {
    const q = queue([view(1), view(2)]);
    const before = q.rows[1];
    expect(q.apply({ changed: [view(2, { acked: 500, state: 'uploading' }), view(3)], removed: [1] })).toBe(true);
    expect(ids(q)).toEqual([2, 3]);
    expect(q.rows[0].acked).toBe(500);
    expect(before.acked).toBe(0);
  });

  it('keeps one array: a batch changes it in place', () => {
    const q = queue([view(1), view(2)]);
    const rows = q.rows;
    q.apply({ changed: [view(3), view(1, { position: 9 })], removed: [2] });
    expect(q.rows).toBe(rows);
    expect(ids(q)).toEqual([3, 1]);
  });

  it('sorts a snapshot and re-sorts when positions move', () => {
    const q = queue([view(2), view(1), view(3)]);
    expect(ids(q)).toEqual([1, 2, 3]);
    q.apply({ changed: [view(3, { position: 0 })], removed: [] });
    expect(ids(q)).toEqual([3, 1, 2]);
  });

  it('replaces everything on a reset batch', () => {
    const q = queue([view(1), view(2)]);
    q.apply({ changed: [view(2)], removed: [], reset: true });
    expect(ids(q)).toEqual([2]);
    // The index was rebuilt: 1 is new again, 2 is updated in place.
    q.apply({ changed: [view(1), view(2, { acked: 3 })], removed: [] });
    expect(q.rows.map((r) => [r.id, r.acked])).toEqual([[1, 0], [2, 3]]);
  });

  it('appends arrivals behind the last row without re-sorting, and sorts one that is not', () => {
    const q = queue([view(1), view(2)]);
    q.apply({ changed: [view(3)], removed: [] });
    q.apply({ changed: [view(2, { acked: 7 }), view(4)], removed: [] });
    expect(q.rows.map((r) => [r.id, r.acked])).toEqual([[1, 0], [2, 7], [3, 0], [4, 0]]);
    q.apply({ changed: [view(0)], removed: [] });
    expect(ids(q)).toEqual([0, 1, 2, 3, 4]);
    // The index follows the sort and a removal.
    q.apply({ changed: [view(3, { acked: 9 })], removed: [1] });
    expect(q.rows.map((r) => [r.id, r.acked])).toEqual([[0, 0], [2, 7], [3, 9], [4, 0]]);
    q.apply({ changed: [view(4, { acked: 2 })], removed: [] });
    expect(q.rows.map((r) => [r.id, r.acked])).toEqual([[0, 0], [2, 7], [3, 9], [4, 2]]);
  });

  it('says an empty batch changed nothing', () => {
    const q = queue([view(1)]);
    expect(q.apply({ changed: [], removed: [] })).toBe(false);
    expect(ids(q)).toEqual([1]);
  });

  it('handles 100,000 rows quickly enough for 10 batches a second', () => {
    const q = queue(Array.from({ length: 100_000 }, (_, i) => view(i + 1)));
    const start = performance.now();
    for (let i = 0; i < 10; i++) {
      const changed = Array.from({ length: 16 }, (_, j) => view(i * 16 + j + 1, { acked: 10 }));
      q.apply({ changed, removed: [] });
    }
    expect(q.rows.length).toBe(100_000);
    expect(q.rows[159].acked).toBe(10);
    // Ten batches over 100k rows; generous bound, this is not a benchmark.
    expect(performance.now() - start).toBeLessThan(1000);
  });
});

describe('fixFor', () => {
  it('offers one fix for each state a person can fix, none otherwise', () => {
    expect(fixFor('needs_sign_in')?.action).toBe('signin');
    expect(fixFor('file_changed')?.action).toBe('restart');
    expect(fixFor('failed')?.action).toBe('retry');
    expect(fixFor('file_missing')?.action).toBe('retry');
    // What the engine's lifecycle allows in that state.
    for (const s of ['file_changed', 'failed', 'file_missing'] as const) expect(ACTIONS[s]).toContain(fixFor(s)!.action);
    for (const s of ['queued', 'uploading', 'waiting_to_retry', 'paused', 'completed', 'cancelled'] as const) expect(fixFor(s)).toBeNull();
  });
});

describe('totals', () => {
  it('sums bytes, ignores cancelled, counts problems', () => {
    const t = totals([
      view(1, { state: 'completed', acked: 1000 }),
      view(2, { state: 'uploading', acked: 250, speed: 100 }),
      view(3, { state: 'cancelled', acked: 10 }),
      view(4, { state: 'file_changed' }),
      view(5, { state: 'waiting_to_retry', size: 0 }),
      view(6, { state: 'queued', size: 0 }),
    ]);
    expect(t).toMatchObject({ count: 6, uploading: 1, retrying: 1, queued: 1, paused: 0, completed: 1, failed: 1, pausable: 3, size: 3000, acked: 1250, speed: 100 });
    expect(t.eta).toBeCloseTo(17.5);
  });
});

describe('actions and progress', () => {
  it('offers what each state allows', () => {
    expect(actions('uploading')).toMatchObject({ pause: true, resume: false, cancel: true });
    expect(actions('paused')).toMatchObject({ pause: false, resume: true });
    expect(actions('file_changed')).toMatchObject({ restart: true, retry: false });
    expect(actions('completed')).toMatchObject({ cancel: false, pause: false });
  });

  it('never draws past the end', () => {
    expect(progress(view(1, { acked: 900, in_flight: 500 }))).toEqual({ acked: 0.9, inFlight: expect.closeTo(0.1) });
    expect(progress(view(1, { size: 0, state: 'completed' }))).toEqual({ acked: 1, inFlight: 0 });
  });
});

describe('hostQuestion', () => {
  it('asks about the first failed row that names a host, counting the rows one answer serves', () => {
    expect(hostQuestion([view(1), view(2, { state: 'failed' })])).toBeNull();
    const cdn = { state: 'failed' as const, asks_host: 'cdn.example', profile: 'Stream' };
    const rows = [
      view(1, { state: 'completed' }),
      view(2, cdn),
      view(3, { ...cdn, profile: 'Other' }),
      view(4, cdn),
      view(5, { ...cdn, asks_host: 'elsewhere.example' }),
      // Retrying already: no longer asks.
      view(6, { ...cdn, state: 'queued' }),
    ];
    const q = hostQuestion(rows);
    expect(q?.row.id).toBe(2);
    expect(q?.count).toBe(2);
  });
});

describe('warmUpRows', () => {
  it('gives rows in the states a queue shows, with ids no upload has', () => {
    const rows = warmUpRows(24);
    expect(rows).toHaveLength(24);
    expect(rows.every((r) => r.id < 0)).toBe(true);
    expect(new Set(rows.map((r) => r.id)).size).toBe(24);
    expect(new Set(rows.map((r) => r.state))).toEqual(
      new Set(['uploading', 'queued', 'completed', 'waiting_to_retry', 'failed', 'paused']),
    );
  });
});

describe('filters and search', () => {
  const rows = [
    view(1, { name: 'Holiday.MP4', state: 'uploading' }),
    view(2, { name: 'notes.txt', state: 'completed' }),
    view(3, { name: 'holiday-2.mp4', state: 'failed' }),
    view(4, { name: 'x.bin', state: 'cancelled' }),
    view(5, { name: 'y.bin', state: 'paused' }),
    view(6, { name: 'z.bin', state: 'needs_sign_in' }),
  ];
  const ids = (rs: QueueRow[]) => rs.map((r) => r.id);

  it('counts each filter; cancelled rows are in All only', () => {
    expect(totals(rows).filters).toEqual({ all: 6, active: 2, completed: 1, failed: 2 });
  });

  it('filters by state group and searches names without regard to case', () => {
    expect(ids(visibleRows(rows, 'active', ''))).toEqual([1, 5]);
    expect(ids(visibleRows(rows, 'failed', ''))).toEqual([3, 6]);
    expect(ids(visibleRows(rows, 'completed', ''))).toEqual([2]);
    expect(ids(visibleRows(rows, 'all', 'HOLIDAY'))).toEqual([1, 3]);
    expect(ids(visibleRows(rows, 'failed', 'holiday'))).toEqual([3]);
    expect(visibleRows(rows, 'completed', 'nothing like it')).toEqual([]);
  });

  it('hands back the queue itself when nothing is filtered (no copy per redraw)', () => {
    expect(visibleRows(rows, 'all', '  ')).toBe(rows);
  });
});

describe('row menu', () => {
  const actionsOf = (r: QueueRow, i = 1, n = 3) => menuItems(r, i, n).map((m) => m.action);

  it('offers what the state allows; completed rows do not move and go to the history', () => {
    expect(actionsOf(view(1, { state: 'uploading' }))).toEqual(['pause', 'details', 'reveal', 'top', 'up', 'down', 'bottom', 'cancel', 'remove']);
    expect(actionsOf(view(1, { state: 'completed' }))).toEqual(['details', 'reveal', 'clear']);
    expect(actionsOf(view(1, { state: 'failed' }))).toContain('retry');
    expect(actionsOf(view(1, { state: 'file_changed' }))).toContain('restart');
    expect(actionsOf(view(1, { state: 'cancelled' }))).toEqual(['retry', 'details', 'reveal', 'remove']);
  });

  it('the first row cannot move up, the last cannot move down', () => {
    expect(actionsOf(view(1, { state: 'queued' }), 0, 3)).not.toContain('up');
    expect(actionsOf(view(1, { state: 'queued' }), 2, 3)).not.toContain('down');
    expect(actionsOf(view(1, { state: 'queued' }), 0, 1).filter((a) => ['top', 'up', 'down', 'bottom'].includes(a))).toEqual([]);
  });
});

describe('honest totals and the network banner', () => {
  it('counts bytes on their way as sent, and confirmed apart', () => {
    const t = totals([view(1, { state: 'uploading', size: 1000, acked: 200, in_flight: 500 })]);
    expect([t.acked, t.sent]).toEqual([200, 700]);
  });

  it('gathers the rows that wait for the network under one line', () => {
    const t = totals([
      view(1, { state: 'waiting_to_retry', error_code: 'network.refused', error: "Can't reach h:1: connection refused", retry_at_ms: 9000 }),
      view(2, { state: 'waiting_to_retry', error_code: 'network.refused', error: "Can't reach h:1: connection refused", retry_at_ms: 5000 }),
      view(3, { state: 'waiting_to_retry', error_code: 'http.5xx', error: 'Server error (503)', retry_at_ms: 1000 }),
    ]);
    expect([t.offline, t.offlineText, t.offlineNextMs]).toEqual([2, "Can't reach h:1: connection refused", 5000]);
  });
});

describe('looksSecret', () => {
  it('knows credentials by the names services give them, as the engine does', () => {
    for (const secret of ['Authorization', 'Proxy-Authorization', 'Cookie', 'X-Api-Key', 'Ocp-Apim-Subscription-Key', 'X-Functions-Key', 'apikey', 'X-Auth-Token', 'X-Client-Secret', 'X-Upload-Signature', 'X-Session-Id', 'Private-Key']) {
      expect(looksSecret(secret), secret).toBe(true);
    }
    for (const plain of ['X-Tenant', 'X-Request-Id', 'Content-Type', 'X-Bucket']) {
      expect(looksSecret(plain), plain).toBe(false);
    }
  });
});
