// Every call the UI makes into the Rust shell, typed. Command names match
// src-tauri/src/commands/*.rs; the capability file grants exactly these.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type { Added, AppInfo, CmdError, HistoryEntry, QueueBatch, HeaderSetting, ProfileView, ServerCaps, Settings, QueueRow, UploadDetails, WatchedFolder } from './types';

export const PENDING_EVENT = 'pending-paths';
export const ADDED_EVENT = 'files-added';

export const api = {
  list: () => invoke<QueueRow[]>('list_uploads'),
  pickAndAdd: (folders: boolean) => invoke<void>('pick_and_add', { folders }),
  addPending: () => invoke<void>('add_pending'),
  /** Sends the files a notice found already uploaded anyway (`again` names the notice). */
  uploadAgain: (again: number) => invoke<void>('upload_again', { again }),
  pause: (id: number) => invoke<void>('pause_upload', { id }),
  resume: (id: number) => invoke<void>('resume_upload', { id }),
  pauseAll: () => invoke<void>('pause_all'),
  /** Uploads waiting for the network try again now. */
  tryNow: () => invoke<void>('try_now'),
  resumeAll: () => invoke<void>('resume_all'),
  cancel: (id: number) => invoke<void>('cancel_upload', { id }),
  retry: (id: number) => invoke<void>('retry_upload', { id }),
  restart: (id: number) => invoke<void>('restart_upload', { id }),
  remove: (id: number) => invoke<void>('remove_upload', { id }),
  reorder: (id: number, index: number) => invoke<void>('reorder_upload', { id, index }),
  reveal: (id: number) => invoke<void>('reveal_upload', { id }),
  appInfo: () => invoke<AppInfo>('app_info'),
  getSettings: () => invoke<Settings>('get_settings'),
  saveSettings: (settings: Settings) => invoke<Settings>('save_settings', { settings }),
  /** The system's folder dialog; the folder picked (with default ignore patterns) or null. */
  pickWatchedFolder: () => invoke<WatchedFolder | null>('pick_watched_folder'),
  checkEndpoint: (endpoint: string, headers: HeaderSetting[], profile: string | null) =>
    invoke<ServerCaps>('check_endpoint', { endpoint, headers, profile }),
  listProfiles: () => invoke<ProfileView[]>('list_profiles'),
  saveProfile: (previous: string | null, profile: ProfileView) => invoke<ProfileView>('save_profile', { previous, profile }),
  removeProfile: (name: string) => invoke<void>('remove_profile', { name }),
  answerHost: (id: number, allow: boolean) => invoke<void>('answer_host', { id, allow }),
  continueUploadUrl: (url: string) => invoke<void>('continue_upload_url', { url }),
  details: (id: number) => invoke<UploadDetails>('upload_details', { id }),
  history: (limit: number) => invoke<HistoryEntry[]>('list_history', { limit }),
  clearCompleted: () => invoke<number>('clear_completed'),
  clear: (id: number) => invoke<void>('clear_upload', { id }),
  /** The shell puts the URL on the clipboard; the window never receives it. */
  copyUploadUrl: (id: number) => invoke<void>('copy_upload_url', { id }),
  setAltSpeed: (on: boolean) => invoke<Settings>('set_alt_speed', { on }),
};

/** The queue's batches, through a channel (large ones are fetched as JSON, not compiled as
 * a script, as event payloads are). Open it before listing the queue. */
export async function onQueue(handler: (batch: QueueBatch) => void): Promise<UnlistenFn> {
  const feed = new Channel<QueueBatch>();
  let open = true;
  feed.onmessage = (b) => {
    if (open) handler(b);
  };
  await invoke<void>('watch_queue', { feed });
  return () => {
    open = false;
  };
}

/** What became of files the shell took from a drop, a dialog or a command line. */
export function onAdded(handler: (added: Added) => void): Promise<UnlistenFn> {
  return listen<Added>(ADDED_EVENT, (e) => handler(e.payload));
}

export function onPending(handler: () => void): Promise<UnlistenFn> {
  return listen(PENDING_EVENT, () => handler());
}

/** What a rejected invoke carries: the shell sends `{code, message}` (CmdError). */
function isCmdError(e: unknown): e is CmdError {
  return typeof e === 'object' && e !== null && typeof (e as CmdError).message === 'string' && typeof (e as CmdError).code === 'string';
}

/** Error text for the person. */
export function errorText(e: unknown): string {
  if (isCmdError(e)) return e.message;
  if (typeof e === 'string') return e;
  if (e instanceof Error) return e.message;
  return JSON.stringify(e);
}

/** The kind of error, for acting on it (`null` for anything not from the shell). */
export function errorCode(e: unknown): string | null {
  return isCmdError(e) ? e.code : null;
}
