// The window's icons, from Lucide (a maintained icon library): one import per icon, so the
// bundle carries only these.
import type { Component } from 'svelte';
import Pause from '@lucide/svelte/icons/pause';
import Play from '@lucide/svelte/icons/play';
import RotateCcw from '@lucide/svelte/icons/rotate-ccw';
import RefreshCw from '@lucide/svelte/icons/refresh-cw';
import CircleX from '@lucide/svelte/icons/circle-x';
import Info from '@lucide/svelte/icons/info';
import FolderOpen from '@lucide/svelte/icons/folder-open';
import ArrowUp from '@lucide/svelte/icons/arrow-up';
import ArrowDown from '@lucide/svelte/icons/arrow-down';
import ArrowUpToLine from '@lucide/svelte/icons/arrow-up-to-line';
import ArrowDownToLine from '@lucide/svelte/icons/arrow-down-to-line';
import Archive from '@lucide/svelte/icons/archive';
import Trash from '@lucide/svelte/icons/trash';
import type { MenuAction } from './queue';

export { default as EllipsisVertical } from '@lucide/svelte/icons/ellipsis-vertical';
export { default as Turtle } from '@lucide/svelte/icons/turtle';
export { default as Search } from '@lucide/svelte/icons/search';
export { default as BrushCleaning } from '@lucide/svelte/icons/brush-cleaning';
export { default as HistoryIcon } from '@lucide/svelte/icons/rotate-ccw-clock';
export { default as Copy } from '@lucide/svelte/icons/copy';
export { default as X } from '@lucide/svelte/icons/x';
export { default as TriangleAlert } from '@lucide/svelte/icons/triangle-alert';
export { default as Upload } from '@lucide/svelte/icons/upload';
export { default as WifiOff } from '@lucide/svelte/icons/wifi-off';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const MENU_ICONS: Record<MenuAction, Component<any>> = {
  pause: Pause,
  resume: Play,
  retry: RotateCcw,
  restart: RefreshCw,
  cancel: CircleX,
  details: Info,
  reveal: FolderOpen,
  top: ArrowUpToLine,
  up: ArrowUp,
  down: ArrowDown,
  bottom: ArrowDownToLine,
  clear: Archive,
  remove: Trash,
};
