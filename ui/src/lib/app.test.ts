import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { AppState } from './app.svelte';
import { onKey } from './keys';
import type { Added, QueueRow, UploadState } from './types';

afterEach(() => clearMocks());

function row(id: number, state: UploadState = 'queued'): QueueRow {
  return { id, position: id, path: `/d/${id}.bin`, name: `${id}.bin`, size: 100, state, error: null, error_code: null, acked: 0, in_flight: 0, speed: 0, eta_secs: null, retry_at_ms: null, recreated: 0, resent: 0, note: null, profile: 'Desktop', asks_host: null };
}

function added(extra: Partial<Added>): Added {
  return { added: 0, resumed: 0, restarted: 0, already_uploaded: 0, rejected: [], rejected_count: 0, again: null, error: null, folder: null, ...extra };
}

/** An AppState showing `rows`, with every shell call recorded. */
function withRows(rows: QueueRow[], answer: (cmd: string) => unknown = () => null) {
  const calls: Array<[string, unknown]> = [];
  mockIPC((cmd, args) => {
    calls.push([cmd, args]);
    return answer(cmd);
  });
  const app = new AppState();
  app.queue.replace(rows);
  app.redraw();
  return { app, calls };
}

const key = (key: string, init: KeyboardEventInit = {}, target: Element = document.body) => {
  const e = new KeyboardEvent('keydown', { key, cancelable: true, ...init });
  Object.defineProperty(e, 'target', { value: target });
  return e;
};

describe('AppState', () => {
  it('says what became of added files, and offers "Upload again" with that notice only', () => {
    const app = new AppState();
    app.report(added({ resumed: 2, already_uploaded: 1, again: 9 }));
    expect(app.notice).toBe('2 resumed from an earlier upload of the same content · 1 already uploaded to this server (not sent again)');
    expect(app.noticeAgain).toEqual({ token: 9, notice: app.notice });
    app.report(added({ restarted: 1, folder: '/w' }));
    expect(app.notice).toBe('Watched folder /w: 1 changed since their upload started: sent again from the start');
    expect(app.noticeAgain).toBeNull();
    // A watched folder's plain additions need no words.
    app.report(added({ added: 3, folder: '/w' }));
    expect(app.notice).toContain('1 changed');
  });

  it('keeps the newest 500 paths that could not be added, each once, and counts the rest', () => {
    const app = new AppState();
    const rejected = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ path: `/p${from + i}`, error: 'missing' }));
    app.report(added({ rejected: rejected(0, 300), rejected_count: 310 }));
    expect(app.couldNotAdd).toHaveLength(300);
    expect(app.couldNotAddMore).toBe(10);
    // 100 seen before, 250 new: 550 kept would be 50 too many.
    app.report(added({ rejected: rejected(200, 350), rejected_count: 350 }));
    expect(app.couldNotAdd).toHaveLength(500);
    expect(app.couldNotAdd[0].path).toBe('/p50');
    expect(app.couldNotAdd.at(-1)!.path).toBe('/p549');
    expect(app.couldNotAddMore).toBe(60);
    app.dismissCouldNotAdd();
    expect([app.couldNotAdd.length, app.couldNotAddMore]).toEqual([0, 0]);
  });

  it('moves a row within the whole queue, whatever the filter shows', async () => {
    const { app, calls } = withRows([row(1), row(2, 'completed'), row(3), row(4, 'completed')]);
    app.filter = 'completed';
    expect(app.listed.rows.map((r) => r.id)).toEqual([2, 4]);
    await app.act('up', app.listed.rows[0]);
    await app.act('bottom', app.listed.rows[1]);
    await app.act('top', row(1));
    expect(calls).toEqual([['reorder_upload', { id: 2, index: 0 }]]);
  });

  it('shows the queue as it is when the row went away meanwhile, and other errors as a notice', async () => {
    const { app, calls } = withRows([row(1), row(2)], (cmd) => {
      if (cmd === 'pause_upload') throw { code: 'unknown_upload', message: 'gone' };
      if (cmd === 'cancel_upload') throw { code: 'io', message: 'disk full' };
      return cmd === 'list_uploads' ? [row(2)] : null;
    });
    app.menu = { row: row(1), x: 0, y: 0 };
    await app.act('pause', row(1));
    expect(app.menu).toBeNull();
    expect(app.shown.rows.map((r) => r.id)).toEqual([2]);
    await app.act('cancel', row(2));
    expect(app.notice).toBe('disk full');
    expect(calls.map(([c]) => c)).toEqual(['pause_upload', 'list_uploads', 'cancel_upload']);
  });

  it('moves the selection through the rows shown, within their ends', () => {
    const { app } = withRows([row(1), row(2, 'completed'), row(3), row(4)]);
    app.select(-1);
    expect(app.selectedId).toBe(1);
    app.filter = 'active';
    app.select(1);
    expect(app.selectedId).toBe(3);
    app.select(5);
    expect(app.selectedId).toBe(4);
  });

  it('opens Settings at the profile of a row that needs sign-in', () => {
    const app = new AppState();
    app.fixRow({ ...row(1, 'needs_sign_in'), profile: 'Gateway' }, 'signin');
    expect([app.showSettings, app.settingsProfile]).toEqual([true, 'Gateway']);
  });
});

describe('onKey', () => {
  it('pauses or resumes the selected row with Space, and leaves fields their keys', () => {
    const { app, calls } = withRows([row(1, 'uploading'), row(2, 'paused')]);
    app.selectedId = 1;
    onKey(app, key(' '));
    app.selectedId = 2;
    onKey(app, key(' '));
    onKey(app, key(' ', {}, document.createElement('input')));
    expect(calls).toEqual([['pause_upload', { id: 1 }], ['resume_upload', { id: 2 }]]);
  });

  it('closes one thing per Escape: the menu, then Settings, then History, then the details', () => {
    const app = new AppState();
    app.menu = { row: row(1), x: 0, y: 0 };
    app.showSettings = true;
    app.showHistory = true;
    app.detailsId = 1;
    const open = () => [!!app.menu, app.showSettings, app.showHistory, app.detailsId !== null];
    onKey(app, key('Escape'));
    expect(open()).toEqual([false, true, true, true]);
    onKey(app, key('Escape'));
    expect(open()).toEqual([false, false, true, true]);
    onKey(app, key('Escape'));
    expect(open()).toEqual([false, false, false, true]);
    onKey(app, key('Escape'));
    expect(open()).toEqual([false, false, false, false]);
  });

  it('keeps queue keys off while Settings is open', () => {
    const { app, calls } = withRows([row(1, 'uploading')]);
    app.selectedId = 1;
    app.showSettings = true;
    onKey(app, key('Delete'));
    onKey(app, key('ArrowDown'));
    expect(calls).toEqual([]);
    expect(app.selectedId).toBe(1);
  });
});
