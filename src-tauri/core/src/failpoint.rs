//! Crash points for the torture tests. A random SIGKILL rarely lands in the narrow windows
//! that matter most (between a server's answer and the journal write that records it), so
//! the tests can name one: `TUSKER_CRASH_AT=<point>:<n>` aborts the process, with no
//! destructor or flush, the n-th time `<point>` is reached; `<point>:<n>:panic` panics there
//! instead (a bug inside one upload, which must not take the queue down). Unset, a point
//! costs one relaxed atomic load.

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
    /// The server answered a part's POST; the journal has no URL for the part yet.
    PartCreated,
    /// The journal counted a final POST that is about to be sent.
    FinalPosting,
    /// The server answered the final POST; the journal has no final URL yet.
    FinalAnswered,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::CreateAnswered => "create-answered",
            Point::PatchAcked => "patch-acked",
            Point::InsertUncommitted => "insert-uncommitted",
            Point::PartCreated => "part-created",
            Point::FinalPosting => "final-posting",
            Point::FinalAnswered => "final-answered",
        }
    }
}

struct Armed {
    point: String,
    at: u32,
    panic: bool,
    seen: AtomicU32,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("TUSKER_CRASH_AT").ok()?;
            let mut parts = v.split(':');
            let point = parts.next()?.to_string();
            let at = parts.next().unwrap_or("1").parse().ok()?;
            let panic = parts.next() == Some("panic");
            Some(Armed {
                point,
                at,
                panic,
                seen: AtomicU32::new(0),
            })
        })
        .as_ref()
}

/// Aborts the process (or panics) here if the tests asked for it at this point and visit.
pub fn hit(point: Point) {
    let Some(a) = armed() else { return };
    if a.point == point.name() && a.seen.fetch_add(1, Ordering::Relaxed) + 1 == a.at {
        if a.panic {
            panic!("TUSKER_CRASH_AT: panic at {}", point.name());
        }
        eprintln!("TUSKER_CRASH_AT: aborting at {}", point.name());
        std::process::abort();
    }
}
