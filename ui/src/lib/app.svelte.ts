// The window's state and what the window does with it: App.svelte makes one AppState and
// hands it to the components that each show a part of it (a class with `$state` fields in a
// `.svelte.ts` module, the way the Svelte team's own REPL keeps its state).
import { tick } from 'svelte';
import { getCurrentWebview } from '@tauri-apps/api/webview';
import { api, errorCode, errorText, onAdded, onPending, onQueue } from './api';
import { Queue, hostQuestion, menuItems, totals as totalsOf, visibleRows, warmUpRows, type Filter, type MenuAction } from './queue';
import { OVERSCAN, QueueListView } from './queue-list.svelte';
import type { Added, ProfileView, QueueBatch, QueueRow, RejectedFile, Settings } from './types';

/** Paths that did not become uploads are kept up to this many (the newest). */
const COULD_NOT_ADD_KEPT = 500;

export class AppState {
  readonly queue = new Queue();
  // `queue.rows` changes in place; a new `shown` after each change is what redraws.
  shown = $state.raw({ rows: this.queue.rows });
  settings: Settings | null = $state(null);
  profiles: ProfileView[] = $state([]);
  dropTarget = $derived(this.profiles.find((p) => p.name === this.settings?.drop_profile) ?? null);
  // "Continue an upload URL…": the URL a service's API created, then the file (a dialog).
  continuing = $state(false);
  continueUrl = $state('');
  // One question at a time about a host the server sends uploads to.
  question = $derived(hostQuestion(this.shown.rows));
  showSettings = $state(false);
  // The profile Settings opens at (a row's "Sign in…"), else the drop profile.
  settingsProfile: string | null = $state(null);
  showHistory = $state(false);
  dropHover = $state(false);
  selectedId: number | null = $state(null);
  now = $state(Date.now());
  notice = $state('');
  /** "Upload again" for the files a notice found already uploaded: shown with that notice only. */
  noticeAgain = $state<{ token: number; notice: string } | null>(null);
  totals = $derived(totalsOf(this.shown.rows));
  filter: Filter = $state('all');
  search = $state('');
  searchEl: HTMLInputElement | undefined = $state();
  // The rows the list shows: the queue itself unless a filter or a search narrows it.
  // A new object per redraw: with no filter the rows are the queue's own array, which is
  // the same array after each batch (a derived array would look unchanged).
  listed = $derived({ rows: visibleRows(this.shown.rows, this.filter, this.search) });
  readonly list = new QueueListView(() => this.listed.rows);
  menu: { row: QueueRow; x: number; y: number } | null = $state(null);
  detailsId: number | null = $state(null);
  detailsRow = $derived(this.detailsId === null ? null : (this.shown.rows.find((r) => r.id === this.detailsId) ?? null));
  // Paths that did not become uploads, until dismissed (the newest last, at most 500 kept).
  couldNotAdd: RejectedFile[] = $state([]);
  couldNotAddMore = $state(0);
  // Mounted hidden with the first render, gone before the first real rows (see warmUpRows).
  warmRows = $state.raw(warmUpRows(2 * OVERSCAN + 8));

  redraw() {
    this.shown = { rows: this.queue.rows };
  }

  /** The selected row if the list shows it. */
  get selected(): QueueRow | undefined {
    return this.listed.rows.find((r) => r.id === this.selectedId);
  }

  report(added: Added) {
    const parts: string[] = [];
    if (added.resumed) parts.push(`${added.resumed} resumed from an earlier upload of the same content`);
    if (added.restarted) parts.push(`${added.restarted} changed since their upload started: sent again from the start`);
    if (added.already_uploaded) parts.push(`${added.already_uploaded} already uploaded to this server (not sent again)`);
    if (added.rejected_count) {
      // Listed with their reasons below the header until dismissed.
      const known = new Set(this.couldNotAdd.map((r) => r.path));
      const fresh = added.rejected.filter((r) => !known.has(r.path));
      const kept = [...this.couldNotAdd, ...fresh];
      this.couldNotAddMore += added.rejected_count - added.rejected.length + Math.max(0, kept.length - COULD_NOT_ADD_KEPT);
      this.couldNotAdd = kept.slice(-COULD_NOT_ADD_KEPT);
    }
    // Rows appear in the queue anyway: a watched folder's plain additions need no words.
    if (added.folder && !parts.length) return;
    this.notice = fromFolder(added) + parts.join(' · ');
    this.noticeAgain = added.again != null ? { token: added.again, notice: this.notice } : null;
  }

  dismissNotice() {
    this.notice = '';
    this.noticeAgain = null;
  }

  uploadAgain() {
    const again = this.noticeAgain;
    this.noticeAgain = null;
    if (again) api.uploadAgain(again.token).catch((e) => (this.notice = errorText(e)));
  }

  dismissCouldNotAdd() {
    this.couldNotAdd = [];
    this.couldNotAddMore = 0;
  }

  // Paths never come from the window: drops, the file dialogs and command lines are taken
  // by the shell, which says what became of them (onAdded) or that they wait (onPending).
  async pick(folders: boolean) {
    try {
      await api.pickAndAdd(folders);
    } catch (e) {
      this.notice = errorText(e);
    }
  }

  async setDropProfile(name: string) {
    if (!this.settings) return;
    try {
      this.settings = await api.saveSettings({ ...this.settings, drop_profile: name });
    } catch (e) {
      this.notice = errorText(e);
    }
  }

  async continueUpload(e: SubmitEvent) {
    e.preventDefault();
    try {
      await api.continueUploadUrl(this.continueUrl);
      this.continuing = false;
      this.continueUrl = '';
    } catch (err) {
      this.notice = errorText(err);
    }
  }

  async answerHost(allow: boolean) {
    const asking = this.question?.row;
    if (!asking) return;
    try {
      await api.answerHost(asking.id, allow);
      this.profiles = await api.listProfiles();
    } catch (e) {
      this.notice = errorText(e);
    }
  }

  waitingForEndpoint() {
    this.notice = 'Set the tus endpoint first; the dropped files are added once it is saved.';
    this.showSettings = true;
  }

  fixRow(row: QueueRow, action: 'signin' | 'restart' | 'retry') {
    if (action === 'signin') {
      this.settingsProfile = row.profile;
      this.showSettings = true;
    } else this.act(action, row);
  }

  /** A row's menu items (its place is in the whole queue, whatever the filter shows). */
  menuItemsFor(row: QueueRow) {
    return menuItems(row, this.shown.rows.findIndex((r) => r.id === row.id), this.shown.rows.length);
  }

  async act(action: MenuAction, row: QueueRow) {
    this.menu = null;
    try {
      // Moves are within the whole queue, whatever the filter shows.
      const index = this.shown.rows.findIndex((r) => r.id === row.id);
      const last = this.shown.rows.length - 1;
      switch (action) {
        case 'pause': return await api.pause(row.id);
        case 'resume': return await api.resume(row.id);
        case 'retry': return await api.retry(row.id);
        case 'restart': return await api.restart(row.id);
        case 'cancel': return await api.cancel(row.id);
        case 'details': this.detailsId = row.id; return;
        // A completed upload leaves the list for the history (its proof stays).
        case 'clear': return await api.clear(row.id);
        case 'remove': return row.state === 'completed' ? await api.clear(row.id) : await api.remove(row.id);
        case 'reveal': return await api.reveal(row.id);
        case 'top': return index > 0 && (await api.reorder(row.id, 0));
        case 'up': return index > 0 && (await api.reorder(row.id, index - 1));
        case 'down': return index < last && (await api.reorder(row.id, index + 1));
        case 'bottom': return index < last && (await api.reorder(row.id, last));
      }
    } catch (e) {
      // The row went away meanwhile (removed from the CLI, pruned): show the queue as it is.
      if (errorCode(e) === 'unknown_upload') {
        this.queue.replace(await api.list());
        this.redraw();
      } else this.notice = errorText(e);
    }
  }

  openMenu(row: QueueRow, x: number, y: number) {
    this.selectedId = row.id;
    this.menu = { row, x, y };
  }

  /** The menu of the selected row, under it (the keyboard's way: Menu key, Shift+F10). */
  openMenuOfSelected() {
    const row = this.selected;
    const el = row && this.list.rowElement(row.id);
    if (!row || !el) return;
    const r = el.getBoundingClientRect();
    this.openMenu(row, r.right - 260, r.top + 40);
  }

  /** Closes the row menu; the keyboard goes back to the list. */
  closeMenu() {
    this.menu = null;
    this.list.el?.focus();
  }

  async clearCompleted() {
    try {
      await api.clearCompleted();
    } catch (e) {
      this.notice = errorText(e);
    }
  }

  async toggleAltSpeed(on: boolean) {
    try {
      this.settings = await api.setAltSpeed(on);
    } catch (e) {
      this.notice = errorText(e);
    }
  }

  /** Moves the selection `delta` rows through the list shown, and scrolls to it. */
  select(delta: number) {
    const rows = this.listed.rows;
    if (rows.length === 0) return;
    const i = rows.findIndex((r) => r.id === this.selectedId);
    const next = Math.max(0, Math.min(rows.length - 1, i < 0 ? 0 : i + delta));
    this.selectedId = rows[next].id;
    this.list.scrollTo(next);
  }

  async saved(s: Settings, list: ProfileView[]) {
    this.settings = s;
    this.profiles = list;
    this.showSettings = false;
    // Files that came before there was anywhere to upload go now.
    if (s.drop_profile) await api.addPending().catch((e) => (this.notice = errorText(e)));
  }

  /** Subscribes to the shell and loads the queue (App's onMount); returns the teardown. */
  start(): () => void {
    const unlisten: Array<() => void> = [];
    (async () => {
      // Subscribe first, then take the snapshot: no batch can fall between the two.
      const batches: QueueBatch[] = [];
      let ready = false;
      unlisten.push(
        await onQueue((b) => {
          if (!ready) return void batches.push(b);
          const start = performance.now();
          const wasEmpty = this.queue.rows.length === 0;
          if (!this.queue.apply(b)) return;
          if (wasEmpty && this.queue.rows.length > 0) this.list.mountGradually();
          this.redraw();
          // For a PerformanceObserver (the window benchmark): how long a batch held the page.
          // Cleared at once, so a long session does not keep them.
          tick().then(() => {
            performance.measure('queue batch', { start, detail: b.changed.length });
            performance.clearMeasures('queue batch');
          });
        }),
      );
      this.settings = await api.getSettings();
      this.profiles = await api.listProfiles();
      this.queue.replace(await api.list());
      for (const b of batches) this.queue.apply(b);
      this.warmRows = [];
      this.redraw();
      ready = true;
      if (!this.settings.drop_profile) this.showSettings = true;
      unlisten.push(await onPending(() => this.waitingForEndpoint()));
      unlisten.push(
        await onAdded((added) => {
          if (added.error) {
            this.notice = fromFolder(added) + added.error.message;
            // Settings were cleared another way since they were loaded: ask for the endpoint.
            if (added.error.code === 'no_endpoint') this.showSettings = true;
          } else this.report(added);
        }),
      );
      // The overlay only: the shell takes the drop itself.
      unlisten.push(
        await getCurrentWebview().onDragDropEvent((event) => {
          const p = event.payload;
          this.dropHover = p.type === 'enter' || p.type === 'over';
        }),
      );
    })().catch((e) => (this.notice = errorText(e)));
    const timer = setInterval(() => (this.now = Date.now()), 1000);
    return () => {
      clearInterval(timer);
      unlisten.forEach((u) => u());
    };
  }
}

function fromFolder(added: Added): string {
  return added.folder ? `Watched folder ${added.folder}: ` : '';
}
