//! Crash points for the torture tests. A random SIGKILL rarely lands in the narrow windows
//! that matter most (between a server's answer and the journal write that records it), so
//! the tests can name one: `TUSKER_CRASH_AT=<point>:<n>` aborts the process, with no
//! destructor or flush, the n-th time `<point>` is reached. Unset, a point costs one relaxed
//! atomic load.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Where a crash can be requested; the names are what `TUSKER_CRASH_AT` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// The server answered a POST (the upload exists there); the journal has no URL yet.
    CreateAnswered,
    /// The server acknowledged a PATCH; the journal still holds the previous offset.
    PatchAcked,
    /// Inside the journal transaction that enqueues a file, before its commit.
    InsertUncommitted,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::CreateAnswered => "create-answered",
            Point::PatchAcked => "patch-acked",
            Point::InsertUncommitted => "insert-uncommitted",
        }
    }
}

struct Armed {
    point: String,
    at: u32,
    seen: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("TUSKER_CRASH_AT").ok()?;
            let (point, n) = v.split_once(':').unwrap_or((v.as_str(), "1"));
            Some(Armed {
                point: point.to_string(),
                at: n.parse().ok()?,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process here if the tests asked for a crash at this point and this visit.
pub fn hit(point: Point) {
    let Some(a) = armed() else { return };
    if a.point == point.name() && a.seen.fetch_add(1, Ordering::Relaxed) + 1 == a.at {
        eprintln!("TUSKER_CRASH_AT: aborting at {}", point.name());
        std::process::abort();
    }
}
