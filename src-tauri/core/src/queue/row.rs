//! How the queue keeps an upload in memory. A dropped folder of 100,000 files is 100,000 rows
//! for as long as the app runs, so a row holds what every row has (numbers, state, path) and
//! puts the rest behind boxes that most rows lack: live numbers only while a worker runs,
//! strings such as an error only when there is one. The folder, the endpoint and the
//! profile's name are shared by all rows that have them, and a short file name sits in the
//! row: a plain row allocates nothing but its own box. UIs get full [`UploadView`]s, built
//! when sent.

use crate::journal::record::{resent_note, UploadId, UploadRecord, UploadState, UploadView};
use crate::profiles::profile::ProfileId;
use crate::queue::progress::SpeedMeter;
use compact_str::CompactString;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// One upload of the queue.
pub(crate) struct Row {
    pub id: UploadId,
    pub position: i64,
    pub size: u64,
    /// Bytes the server has confirmed.
    pub acked: u64,
    /// The path's folder, with its trailing separator (shared), and its last component.
    dir: Arc<str>,
    file: CompactString,
    /// Without any `user:password@`.
    pub endpoint: Arc<str>,
    /// The profile it uploads with and that profile's name (shared): a dropped folder's rows
    /// all have one.
    profile_id: Option<ProfileId>,
    profile: Option<Arc<str>>,
    pub state: UploadState,
    live: Option<Box<Live>>,
    rare: Option<Box<Rare>>,
}

/// Numbers that move only while the upload is uploading or waiting to retry.
#[derive(Default)]
struct Live {
    in_flight: u64,
    speed: f64,
    eta_secs: Option<f64>,
    retry_at_ms: Option<i64>,
    meter: SpeedMeter,
}

/// What few rows have.
#[derive(Default)]
struct Rare {
    /// Set only when the name is not the path's last component.
    name: Option<Box<str>>,
    error: Option<String>,
    /// The catalogue's code of `error`, and its technical detail.
    error_code: Option<&'static str>,
    error_detail: Option<String>,
    note: Option<String>,
    /// How many times the server lost the upload and it was created again.
    recreated: i64,
    /// Bytes sent again because the server lost bytes it had confirmed.
    resent: u64,
    asks_host: Option<String>,
    upload_url: Option<String>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.error.is_none()
            && self.error_code.is_none()
            && self.error_detail.is_none()
            && self.note.is_none()
            && self.recreated == 0
            && self.resent == 0
            && self.asks_host.is_none()
            && self.upload_url.is_none()
    }
}

/// A path's folder (with its trailing separator, empty if none) and its last component.
fn split_path(path: &str) -> (&str, &str) {
    match path.rfind(std::path::MAIN_SEPARATOR) {
        Some(i) => path.split_at(i + std::path::MAIN_SEPARATOR.len_utf8()),
        None => ("", path),
    }
}

impl Row {
    /// The row of a journal record, with no live numbers yet. A completed upload keeps no
    /// server URL here (the journal has it): 100,000 of them cost 10 MiB.
    pub fn from_record(r: &UploadRecord, shared: &mut Interner) -> Row {
        let (dir, file) = split_path(&r.path);
        let mut row = Row {
            id: r.id,
            position: r.position,
            size: r.size,
            acked: r.acked_offset,
            dir: shared.get(dir),
            file: file.into(),
            endpoint: shared.endpoint(&r.endpoint),
            profile_id: r.profile_id,
            profile: r.profile.as_deref().map(|name| shared.get(name)),
            state: r.state,
            live: None,
            rare: None,
        };
        row.set_name(&r.name);
        row.set_error(r.error.clone());
        row.set_error_code(r.error_code.as_deref(), r.error_detail.clone());
        row.set_recreated(r.recreated);
        row.set_resent(r.resent);
        row.set_asks_host(r.asks_host.clone());
        if r.state != UploadState::Completed {
            row.set_upload_url(r.upload_url.clone());
        }
        row
    }

    /// What UIs get.
    pub fn view(&self) -> UploadView {
        let live = self.live.as_deref();
        let rare = self.rare.as_deref();
        UploadView {
            id: self.id,
            position: self.position,
            path: self.path(),
            name: self.name().to_string(),
            size: self.size,
            endpoint: self.endpoint.to_string(),
            upload_url: rare.and_then(|r| r.upload_url.clone()),
            state: self.state,
            error: rare.and_then(|r| r.error.clone()),
            error_code: rare.and_then(|r| r.error_code).map(String::from),
            error_detail: rare.and_then(|r| r.error_detail.clone()),
            acked: self.acked,
            in_flight: live.map_or(0, |l| l.in_flight),
            speed: live.map_or(0.0, |l| l.speed),
            eta_secs: live.and_then(|l| l.eta_secs),
            retry_at_ms: live.and_then(|l| l.retry_at_ms),
            recreated: rare.map_or(0, |r| r.recreated),
            resent: rare.map_or(0, |r| r.resent),
            note: rare.and_then(|r| r.note.clone()),
            profile: self.profile.as_deref().map(str::to_string),
            asks_host: rare.and_then(|r| r.asks_host.clone()),
            profile_id: self.profile_id,
        }
    }

    fn rare_mut(&mut self, change: impl FnOnce(&mut Rare)) {
        let mut rare = self.rare.take().unwrap_or_default();
        change(&mut rare);
        if !rare.is_empty() {
            self.rare = Some(rare);
        }
    }

    fn live_mut(&mut self) -> &mut Live {
        self.live.get_or_insert_with(Box::default)
    }

    pub fn path(&self) -> String {
        format!("{}{}", self.dir, self.file)
    }

    pub fn is_at(&self, path: &str) -> bool {
        split_path(path) == (&*self.dir, self.file.as_str())
    }

    pub fn name(&self) -> &str {
        match self.rare.as_ref().and_then(|r| r.name.as_deref()) {
            Some(name) => name,
            None => &self.file,
        }
    }

    fn set_name(&mut self, name: &str) {
        let own = (name != self.file).then(|| name.into());
        if own.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.name = own);
        }
    }

    /// A new path, and the name that goes with it.
    pub fn set_path(&mut self, path: &str, name: &str, dirs: &mut Interner) {
        let (dir, file) = split_path(path);
        if *self.dir != *dir {
            self.dir = dirs.get(dir);
        }
        self.file = file.into();
        self.set_name(name);
    }

    pub fn error(&self) -> Option<&str> {
        self.rare.as_ref()?.error.as_deref()
    }

    /// The error shown, as the catalogue said it (for writing it again to the journal).
    pub fn said(&self) -> Option<crate::error::explain::Said> {
        let r = self.rare.as_ref()?;
        let text = r.error.clone()?;
        Some(crate::error::explain::Said {
            code: r.error_code.unwrap_or("other"),
            detail: r.error_detail.clone().unwrap_or_else(|| text.clone()),
            text,
        })
    }

    pub fn set_error(&mut self, error: Option<String>) {
        if error.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.error = error);
        }
    }

    /// The catalogue's code of the error shown (`None` with no error, or one not from it)
    /// and its technical detail.
    pub fn set_error_code(&mut self, code: Option<&str>, detail: Option<String>) {
        let code = code.and_then(|c| {
            crate::error::explain::CODES
                .iter()
                .copied()
                .find(|k| *k == c)
        });
        if code.is_some() || detail.is_some() || self.rare.is_some() {
            self.rare_mut(|r| {
                r.error_code = code;
                r.error_detail = detail;
            });
        }
    }

    pub fn set_note(&mut self, note: Option<String>) {
        if note.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.note = note);
        }
    }

    pub fn set_recreated(&mut self, recreated: i64) {
        if recreated != 0 || self.rare.is_some() {
            self.rare_mut(|r| r.recreated = recreated);
        }
    }

    /// The server lost the upload and it is created again.
    pub fn count_recreated(&mut self) {
        self.rare_mut(|r| r.recreated += 1);
    }

    /// Bytes sent again, and the note that says why progress went back.
    pub fn set_resent(&mut self, resent: u64) {
        if resent != 0 || self.rare.is_some() {
            self.rare_mut(|r| {
                r.resent = resent;
                r.note = (resent > 0).then(|| resent_note(resent));
            });
        }
    }

    /// The server lost `bytes` it had confirmed: they are sent again.
    pub fn count_resent(&mut self, bytes: u64) {
        let resent = self.rare.as_ref().map_or(0, |r| r.resent) + bytes;
        self.set_resent(resent);
    }

    pub fn profile(&self) -> Option<&str> {
        self.profile.as_deref()
    }

    pub fn profile_id(&self) -> Option<ProfileId> {
        self.profile_id
    }

    /// The profile's new name.
    pub fn set_profile_name(&mut self, name: Option<&str>, shared: &mut Interner) {
        self.profile = name.map(|n| shared.get(n));
    }

    pub fn asks_host(&self) -> Option<&str> {
        self.rare.as_ref()?.asks_host.as_deref()
    }

    pub fn set_asks_host(&mut self, host: Option<String>) {
        if host.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.asks_host = host);
        }
    }

    /// Whether a server upload exists for it (its URL is kept while it is unfinished).
    pub fn has_upload_url(&self) -> bool {
        self.rare.as_ref().is_some_and(|r| r.upload_url.is_some())
    }

    pub fn set_upload_url(&mut self, url: Option<String>) {
        if url.is_some() || self.rare.is_some() {
            self.rare_mut(|r| r.upload_url = url);
        }
    }

    /// Progress from the worker; true when it moved.
    pub fn set_progress(&mut self, acked: u64, in_flight: u64) -> bool {
        let before = (self.acked, self.live.as_ref().map_or(0, |l| l.in_flight));
        if before == (acked, in_flight) {
            return false;
        }
        self.acked = acked;
        if in_flight > 0 || self.live.is_some() {
            self.live_mut().in_flight = in_flight;
        }
        true
    }

    /// The server upload starts again from `acked` (it lost bytes, or a new one was made):
    /// nothing in flight, and the speed is measured anew.
    pub fn restart_at(&mut self, acked: u64) {
        self.acked = acked;
        if let Some(live) = self.live.as_mut() {
            live.in_flight = 0;
            live.meter.reset();
        }
    }

    /// When a waiting upload tries again.
    pub fn set_retry_at(&mut self, until_ms: i64) {
        self.live_mut().retry_at_ms = Some(until_ms);
    }

    /// Samples the speed of an uploading row; true when its speed or ETA changed.
    pub fn sample_speed(&mut self, now: Instant) -> bool {
        let (acked, size) = (self.acked, self.size);
        let live = self.live_mut();
        let before = (live.speed, live.eta_secs);
        let sent = acked + live.in_flight;
        live.meter.sample(now, sent);
        live.speed = live.meter.speed();
        live.eta_secs = live.meter.eta(size.saturating_sub(sent));
        before != (live.speed, live.eta_secs)
    }

    /// The row's side of a state change: the numbers that go with the new state.
    pub fn show_state(&mut self, state: UploadState, error: Option<String>) {
        self.state = state;
        if state == UploadState::Completed {
            self.acked = self.size;
            self.set_upload_url(None);
        }
        let no_error = error.is_none();
        self.set_error(error);
        if no_error {
            self.set_error_code(None, None);
        }
        self.set_asks_host(None);
        match state {
            UploadState::Uploading => {
                if let Some(live) = self.live.as_mut() {
                    live.in_flight = 0;
                    live.retry_at_ms = None;
                }
            }
            UploadState::WaitingToRetry => {
                if let Some(live) = self.live.as_mut() {
                    let retry_at_ms = live.retry_at_ms;
                    **live = Live {
                        retry_at_ms,
                        ..Live::default()
                    };
                }
            }
            _ => self.live = None,
        }
    }
}

/// Strings many rows share (folders, endpoints), each kept once.
#[derive(Default)]
pub(crate) struct Interner {
    kept: HashSet<Arc<str>>,
    /// Strings handed out since unused ones were last dropped, and how many were kept then.
    handed: usize,
    kept_after_sweep: usize,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Arc<str> {
        self.handed += 1;
        if self.handed > self.kept_after_sweep.max(64) {
            // Amortised: a sweep visits at most twice as many strings as were handed out.
            self.kept.retain(|k| Arc::strong_count(k) > 1);
            self.handed = 0;
            self.kept_after_sweep = self.kept.len();
        }
        if let Some(k) = self.kept.get(s) {
            return k.clone();
        }
        let k: Arc<str> = s.into();
        self.kept.insert(k.clone());
        k
    }

    /// The shared copy of an endpoint, without its userinfo.
    pub fn endpoint(&mut self, endpoint: &str) -> Arc<str> {
        self.get(&crate::redact::strip_userinfo(endpoint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> UploadRecord {
        UploadRecord {
            id: 7,
            position: 3,
            path: "/data/photos/a.jpg".into(),
            name: "a.jpg".into(),
            size: 100,
            mtime_ns: 0,
            ino: 0,
            ctime_ns: 0,
            fingerprint: String::new(),
            endpoint: "https://u:secret@tus.example/files".into(),
            upload_url: Some("https://tus.example/files/1".into()),
            acked_offset: 40,
            state: UploadState::Queued,
            error: None,
            metadata: Default::default(),
            headers: Default::default(),
            chunk_size: None,
            created_at: 0,
            updated_at: 0,
            completed_at: None,
            expires_at: None,
            recreated: 0,
            content_hash: None,
            resent: 0,
            profile_id: None,
            profile: None,
            given_url: false,
            asks_host: None,
            cleared_at: None,
            busy_ms: 0,
            retries: 0,
            last_error: None,
            error_code: None,
            error_detail: None,
            destination: None,
        }
    }

    #[test]
    fn a_plain_row_keeps_nothing_boxed_and_its_view_is_the_records() {
        let mut rec = record();
        rec.upload_url = None;
        let mut shared = Interner::default();
        let row = Row::from_record(&rec, &mut shared);
        assert!(row.rare.is_none() && row.live.is_none());
        assert!(!row.file.is_heap_allocated());
        assert_eq!(row.path(), "/data/photos/a.jpg");
        assert!(row.is_at("/data/photos/a.jpg") && !row.is_at("/data/photos/b.jpg"));
        let v = row.view();
        assert_eq!(v.name, "a.jpg");
        assert_eq!(v.endpoint, "https://***@tus.example/files");
        assert_eq!((v.acked, v.in_flight, v.recreated), (40, 0, 0));
        let again = Row::from_record(&rec, &mut shared);
        assert!(Arc::ptr_eq(&row.endpoint, &again.endpoint));
        assert!(Arc::ptr_eq(&row.dir, &again.dir));
    }

    #[test]
    fn rare_fields_round_trip_and_the_box_goes_when_empty() {
        let mut rec = record();
        rec.name = "shown name".into();
        rec.error = Some("boom".into());
        rec.profile_id = Some(2);
        rec.profile = Some("work".into());
        rec.resent = 5;
        rec.recreated = 2;
        let mut shared = Interner::default();
        let mut row = Row::from_record(&rec, &mut shared);
        let v = row.view();
        assert_eq!(v.name, "shown name");
        assert_eq!(v.error.as_deref(), Some("boom"));
        assert_eq!(
            (v.profile_id, v.profile.as_deref()),
            (Some(2), Some("work"))
        );
        assert_eq!(v.upload_url.as_deref(), Some("https://tus.example/files/1"));
        assert!(v.note.is_some());
        assert_eq!((v.resent, v.recreated), (5, 2));
        row.set_path("/elsewhere/b.jpg", "b.jpg", &mut shared);
        row.set_error(None);
        row.set_resent(0);
        row.set_recreated(0);
        row.set_profile_name(None, &mut shared);
        row.set_upload_url(None);
        assert!(row.rare.is_none());
        assert_eq!(
            row.view().profile_id,
            Some(2),
            "a profile's rows keep nothing boxed"
        );
        let v = row.view();
        assert_eq!(
            (v.path.as_str(), v.name.as_str()),
            ("/elsewhere/b.jpg", "b.jpg")
        );
    }

    #[test]
    fn a_row_stays_small() {
        // 100,000 rows: every 8 bytes here is 0.8 MB.
        assert!(
            std::mem::size_of::<Row>() <= 144,
            "{}",
            std::mem::size_of::<Row>()
        );
    }

    #[test]
    fn paths_split_and_join_whatever_their_shape() {
        for path in [
            "/a/b/c.txt",
            "/c.txt",
            "c.txt",
            "/a/b/",
            "",
            "/a/a name longer than twenty-four bytes.bin",
        ] {
            let (dir, file) = split_path(path);
            assert_eq!(format!("{dir}{file}"), path);
        }
        let mut shared = Interner::default();
        let a = shared.get("/x/");
        for i in 0..200 {
            shared.get(&format!("/gone{i}/"));
        }
        assert!(
            shared.kept.len() < 100,
            "unused strings are dropped: {}",
            shared.kept.len()
        );
        assert!(Arc::ptr_eq(&a, &shared.get("/x/")));
    }

    #[test]
    fn live_numbers_exist_while_running_and_follow_the_state() {
        let mut shared = Interner::default();
        let mut row = Row::from_record(&record(), &mut shared);
        row.show_state(UploadState::Uploading, None);
        assert!(row.set_progress(50, 10));
        assert!(!row.set_progress(50, 10));
        assert_eq!(row.view().in_flight, 10);
        row.show_state(UploadState::WaitingToRetry, Some("down".into()));
        row.set_retry_at(1234);
        let v = row.view();
        assert_eq!((v.in_flight, v.retry_at_ms), (0, Some(1234)));
        assert_eq!(v.error.as_deref(), Some("down"));
        row.show_state(UploadState::Completed, None);
        assert!(row.live.is_none());
        let v = row.view();
        assert_eq!((v.acked, v.upload_url, v.error), (100, None, None));
    }
}
