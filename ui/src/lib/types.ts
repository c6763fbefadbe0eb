// Mirrors of the engine's serialised types (src-tauri/core/src/model.rs, engine.rs) and the
// shell's settings (src-tauri/src/commands/settings.rs).

export type UploadState =
  | 'queued'
  | 'uploading'
  | 'paused'
  | 'waiting_to_retry'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'file_missing'
  | 'file_changed';

export interface UploadView {
  id: number;
  position: number;
  path: string;
  name: string;
  size: number;
  endpoint: string;
  state: UploadState;
  error: string | null;
  acked: number;
  in_flight: number;
  speed: number;
  eta_secs: number | null;
  retry_at_ms: number | null;
  recreated: number;
  /** Bytes sent again because the server lost bytes it had confirmed. */
  resent: number;
  /** Not an error: why progress went back. */
  note: string | null;
  metadata: Record<string, string>;
  header_names: string[];
}

export interface EventBatch {
  changed: UploadView[];
  removed: number[];
  /** `changed` is the whole queue (after the shell fell behind): replace, don't merge. */
  reset?: boolean;
}

export interface AppInfo {
  version: string;
  data_dir: string;
}

export type AddResult =
  | { kind: 'added'; id: number; path: string }
  | { kind: 'resumed'; id: number; path: string }
  | { kind: 'already_uploaded'; id: number; path: string }
  | { kind: 'restarted'; id: number; path: string }
  | { kind: 'rejected'; path: string; error: string };

/** A custom header; `value` is null for a stored secret the shell will not send back. */
export interface HeaderSetting {
  name: string;
  value: string | null;
  secret: boolean;
}

export interface Settings {
  endpoint: string;
  headers: HeaderSetting[];
  metadata: Record<string, string>;
  chunk_size: number | null;
  parallel: number;
  bandwidth: number;
  auto_resume: boolean;
  remove_completed_after_days: number | null;
}

export interface ServerCaps {
  versions: string[];
  extensions: string[];
  max_size: number | null;
  checksum_algorithms: string[];
}
