// The window's keyboard shortcuts (listened to on the window by App.svelte), as listed in the
// empty queue's "Keys:" line.
import { api } from './api';
import type { AppState } from './app.svelte';
import { actions, goAgain, menuItems } from './queue';

export function onKey(app: AppState, e: KeyboardEvent) {
  const target = e.target as HTMLElement;
  if (target.closest('input, textarea, select, form')) return;
  const ctrl = e.ctrlKey || e.metaKey;
  // Queue keys act on the list only: not while Settings is open, and not on a focused
  // button (Space and Enter belong to it).
  const queueKeys = !app.showSettings && !app.showHistory && !target.closest('button');
  const row = app.selected;
  if (ctrl && e.key.toLowerCase() === 'o') {
    e.preventDefault();
    app.pick(e.shiftKey);
  } else if (ctrl && e.key === ',') {
    e.preventDefault();
    app.showSettings = !app.showSettings;
  } else if (ctrl && e.shiftKey && e.key.toLowerCase() === 'p') {
    e.preventDefault();
    api.pauseAll();
  } else if (ctrl && e.shiftKey && e.key.toLowerCase() === 'r') {
    e.preventDefault();
    api.resumeAll();
  } else if (ctrl && e.key.toLowerCase() === 'f') {
    e.preventDefault();
    app.showSettings = false;
    app.showHistory = false;
    setTimeout(() => app.searchEl?.focus());
  } else if (e.key === 'Escape') {
    if (app.menu) app.menu = null;
    else if (app.showSettings) app.showSettings = false;
    else if (app.showHistory) app.showHistory = false;
    else app.detailsId = null;
  } else if (!queueKeys) {
    return;
  } else if (e.key === 'ContextMenu' || (e.shiftKey && e.key === 'F10')) {
    e.preventDefault();
    app.openMenuOfSelected();
  } else if (row && e.key === 'Enter') {
    e.preventDefault();
    app.detailsId = row.id;
  } else if (row && e.altKey && (e.key === 'Home' || e.key === 'End')) {
    e.preventDefault();
    if (menuItems(row, 0, 2).some((m) => m.action === 'bottom')) app.act(e.key === 'Home' ? 'top' : 'bottom', row);
  } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    const move = e.key === 'ArrowUp' ? 'up' : 'down';
    if (e.altKey && row) {
      if (app.menuItemsFor(row).some((m) => m.action === move)) app.act(move, row);
    } else app.select(e.key === 'ArrowDown' ? 1 : -1);
  } else if (row && e.key === ' ') {
    e.preventDefault();
    const again = goAgain(row.state);
    if (actions(row.state).pause) app.act('pause', row);
    else if (again === 'resume') app.act('resume', row);
  } else if (row && e.key === 'Delete') {
    app.act(row.state === 'completed' ? 'clear' : 'remove', row);
  } else if (row && e.key.toLowerCase() === 'r' && !ctrl) {
    const again = goAgain(row.state);
    if (again) app.act(again, row);
  }
}
