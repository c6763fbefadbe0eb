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
    /// A dropped folder's walk examined an entry.
    Walking,
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
            Point::Walking => "walking",
        }
    }

    const ALL: [Point; 7] = [
        Point::CreateAnswered,
        Point::PatchAcked,
        Point::InsertUncommitted,
        Point::PartCreated,
        Point::FinalPosting,
        Point::FinalAnswered,
        Point::Walking,
    ];
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
            Some(parse(&v).unwrap_or_else(|why| {
                // A test that asked for a crash and got none would prove nothing.
                eprintln!("TUSKER_CRASH_AT={v:?}: {why}");
                std::process::exit(70)
            }))
        })
        .as_ref()
}

/// `<point>[:<n>[:panic]]`, or why not.
fn parse(v: &str) -> Result<Armed, String> {
    let mut parts = v.split(':');
    let point = parts.next().unwrap_or("").to_string();
    if !Point::ALL.iter().any(|p| p.name() == point) {
        let names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
        return Err(format!(
            "no crash point {point:?} (points: {})",
            names.join(", ")
        ));
    }
    let at = match parts.next() {
        None => 1,
        Some(n) => n
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{n:?} is not a visit number (1, 2, ...)"))?,
    };
    let panic = match parts.next() {
        None => false,
        Some("panic") => true,
        Some(other) => {
            return Err(format!(
                "{other:?}: only \"panic\" may follow the visit number"
            ))
        }
    };
    if parts.next().is_some() {
        return Err("too many parts: <point>[:<n>[:panic]]".into());
    }
    Ok(Armed {
        point,
        at,
        panic,
        seen: AtomicU32::new(0),
    })
}

/// Reads `TUSKER_CRASH_AT` now (the engine does when it opens): a malformed one ends the
/// process at once, before any work, instead of a run that silently crashes nowhere.
pub fn arm() {
    let _ = armed();
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_crash_point_is_named_exactly_or_refused() {
        let ok = super::parse("patch-acked:3:panic").unwrap();
        assert_eq!(
            (ok.point.as_str(), ok.at, ok.panic),
            ("patch-acked", 3, true)
        );
        assert_eq!(super::parse("walking").unwrap().at, 1);
        for bad in [
            "patch_acked:1",
            "patch-acked:x",
            "patch-acked:0",
            "patch-acked:1:abort",
            "",
            "walking:1:panic:2",
        ] {
            assert!(super::parse(bad).is_err(), "{bad}");
        }
    }
}
