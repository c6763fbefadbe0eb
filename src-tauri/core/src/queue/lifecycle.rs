//! The lifecycle of an upload in one place: which events move it from which state to which.
//! The actor in [`crate::queue::engine`] is the only caller, so no other code decides a state; the
//! journal's filters and the UI's per-state actions are derived from the same table.

use serde::Serialize;

use crate::journal::record::UploadState;

/// Something that happens to an upload: a user command, the scheduler, the worker or the
/// file watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    // The user.
    Pause,
    /// Resume a paused upload; `failed_too` also tries failed and missing-file ones again
    /// (`resume --all --failed`).
    Resume {
        failed_too: bool,
    },
    Retry,
    /// Upload the file's current content from scratch (the answer to `file changed`).
    Restart,
    Cancel,
    /// The same file was added again and its sent bytes were proven: go on.
    ReAdd,
    /// The same file was added again and it changed inside the sent bytes: from scratch.
    ReAddChanged,
    // The scheduler.
    Start,
    /// The worker was stopped without an outcome: a quit, or a crash found at launch.
    Interrupted,
    // The worker.
    Waiting,
    Working,
    /// The server holds every byte (the worker journalled the final offset and the hash).
    Completed,
    Failed,
    // The worker or the file watcher.
    FileGone,
    /// A missing file turned up at a new path (the watcher followed a rename).
    FileFound,
    FileChanged,
    // The worker, then the profile.
    /// The server refused the credentials (401/403), refreshed ones included.
    SignInNeeded,
    /// The profile's credentials were edited: uploads waiting for them go on.
    CredentialsChanged,
}

/// Every event, for the table test and for deriving actions.
pub const EVENTS: [Event; 19] = [
    Event::Pause,
    Event::Resume { failed_too: false },
    Event::Resume { failed_too: true },
    Event::Retry,
    Event::Restart,
    Event::Cancel,
    Event::ReAdd,
    Event::ReAddChanged,
    Event::Start,
    Event::Interrupted,
    Event::Waiting,
    Event::Working,
    Event::Completed,
    Event::Failed,
    Event::FileGone,
    Event::FileFound,
    Event::FileChanged,
    Event::SignInNeeded,
    Event::CredentialsChanged,
];

/// The state after `event`, or `None` when the event does not apply in `from` (the actor
/// then changes nothing). `Some(from)` accepts an event that leaves the state as it is.
pub fn transition(from: UploadState, event: Event) -> Option<UploadState> {
    use Event as E;
    use UploadState as S;
    let running = matches!(from, S::Uploading | S::WaitingToRetry);
    let unfinished = from.is_unfinished();
    let stopped_by_trouble = matches!(from, S::Failed | S::FileMissing | S::NeedsSignIn);
    Some(match event {
        E::Pause => match from {
            S::Queued | S::Uploading | S::WaitingToRetry | S::Paused => S::Paused,
            _ => return None,
        },
        E::Resume { failed_too } => match from {
            S::Paused => S::Queued,
            S::Queued | S::Uploading | S::WaitingToRetry => from,
            _ if failed_too && stopped_by_trouble => S::Queued,
            _ => return None,
        },
        E::Retry => match from {
            S::Failed | S::FileMissing | S::Cancelled | S::Paused | S::NeedsSignIn => S::Queued,
            _ => return None,
        },
        // A healthy upload is not thrown away by a click; a changed file is restarted by
        // adding it again (`ReAddChanged`) whatever its state.
        E::Restart => match from {
            S::FileChanged
            | S::Failed
            | S::FileMissing
            | S::Cancelled
            | S::Paused
            | S::NeedsSignIn => S::Queued,
            _ => return None,
        },
        E::Cancel => match from {
            S::Completed => return None,
            _ => S::Cancelled,
        },
        E::ReAdd => match from {
            S::Queued | S::Uploading | S::WaitingToRetry => from,
            S::Paused | S::Failed | S::FileMissing | S::FileChanged | S::NeedsSignIn => S::Queued,
            S::Completed | S::Cancelled => return None,
        },
        E::ReAddChanged if unfinished => S::Queued,
        E::Start if from == S::Queued => S::Uploading,
        E::Interrupted if running => S::Queued,
        E::Waiting if running => S::WaitingToRetry,
        E::Working if running => S::Uploading,
        // Also from a stopped state: the worker journalled completion just before it was
        // stopped, or before a crash. Never from cancelled: cancel refuses a journalled
        // completion first.
        E::Completed => match from {
            S::Cancelled => return None,
            _ => S::Completed,
        },
        // From queued too: a start the journal refused.
        E::Failed if running || from == S::Queued => S::Failed,
        E::FileGone if unfinished => S::FileMissing,
        E::FileFound if from == S::FileMissing => S::Queued,
        E::FileChanged if unfinished => S::FileChanged,
        E::SignInNeeded if running => S::NeedsSignIn,
        E::CredentialsChanged if from == S::NeedsSignIn => S::Queued,
        _ => return None,
    })
}

/// What a person can do to an upload from a window; `Remove` applies in every state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Pause,
    Resume,
    Retry,
    Restart,
    Cancel,
}

/// The actions a row offers in `state`: those whose event moves it. Of the three ways to go
/// again (resume, retry, restart) only the first that applies is offered, so a paused row
/// says Resume, not also Retry and Restart.
pub fn actions(state: UploadState) -> Vec<Action> {
    let moves = |e: Event| transition(state, e).is_some_and(|to| to != state);
    let mut out = Vec::new();
    if moves(Event::Pause) {
        out.push(Action::Pause);
    }
    let again = [
        (Action::Resume, Event::Resume { failed_too: false }),
        (Action::Retry, Event::Retry),
        (Action::Restart, Event::Restart),
    ];
    if let Some((a, _)) = again.into_iter().find(|(_, e)| moves(*e)) {
        out.push(a);
    }
    if moves(Event::Cancel) {
        out.push(Action::Cancel);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use UploadState as S;

    /// Every (state, event) pair, written out: a change to the lifecycle shows up here as a
    /// changed row, never as a silent side effect elsewhere.
    #[test]
    fn every_pair() {
        let q = Some(S::Queued);
        let up = Some(S::Uploading);
        let wait = Some(S::WaitingToRetry);
        let p = Some(S::Paused);
        let done = Some(S::Completed);
        let fail = Some(S::Failed);
        let c = Some(S::Cancelled);
        let miss = Some(S::FileMissing);
        let chg = Some(S::FileChanged);
        let sign = Some(S::NeedsSignIn);
        let no = None;
        // Columns: Queued, Uploading, WaitingToRetry, Paused, Completed, Failed, Cancelled,
        // FileMissing, FileChanged, NeedsSignIn.
        #[rustfmt::skip]
        let table: [(Event, [Option<UploadState>; 10]); 19] = [
            (Event::Pause,                         [p, p, p, p, no, no, no, no, no, no]),
            (Event::Resume { failed_too: false },  [q, up, wait, q, no, no, no, no, no, no]),
            (Event::Resume { failed_too: true },   [q, up, wait, q, no, q, no, q, no, q]),
            (Event::Retry,                         [no, no, no, q, no, q, q, q, no, q]),
            (Event::Restart,                       [no, no, no, q, no, q, q, q, q, q]),
            (Event::Cancel,                        [c, c, c, c, no, c, c, c, c, c]),
            (Event::ReAdd,                         [q, up, wait, q, no, q, no, q, q, q]),
            (Event::ReAddChanged,                  [q, q, q, q, no, q, no, q, q, q]),
            (Event::Start,                         [up, no, no, no, no, no, no, no, no, no]),
            (Event::Interrupted,                   [no, q, q, no, no, no, no, no, no, no]),
            (Event::Waiting,                       [no, wait, wait, no, no, no, no, no, no, no]),
            (Event::Working,                       [no, up, up, no, no, no, no, no, no, no]),
            (Event::Completed,                     [done, done, done, done, done, done, no, done, done, done]),
            (Event::Failed,                        [fail, fail, fail, no, no, no, no, no, no, no]),
            (Event::FileGone,                      [miss, miss, miss, miss, no, miss, no, miss, miss, miss]),
            (Event::FileFound,                     [no, no, no, no, no, no, no, q, no, no]),
            (Event::FileChanged,                   [chg, chg, chg, chg, no, chg, no, chg, chg, chg]),
            (Event::SignInNeeded,                  [no, sign, sign, no, no, no, no, no, no, no]),
            (Event::CredentialsChanged,            [no, no, no, no, no, no, no, no, no, q]),
        ];
        let columns = [
            S::Queued,
            S::Uploading,
            S::WaitingToRetry,
            S::Paused,
            S::Completed,
            S::Failed,
            S::Cancelled,
            S::FileMissing,
            S::FileChanged,
            S::NeedsSignIn,
        ];
        let mut seen = std::collections::HashSet::new();
        for (event, row) in table {
            assert!(seen.insert(event), "{event:?} twice in the table");
            for (from, want) in columns.iter().zip(row) {
                assert_eq!(transition(*from, event), want, "{from:?} + {event:?}");
            }
        }
        assert_eq!(seen.len(), EVENTS.len(), "every event has a row");
        assert_eq!(columns.len(), S::ALL.len(), "every state has a column");
        assert!(EVENTS.iter().all(|e| seen.contains(e)));
    }

    #[test]
    fn completed_is_final_except_for_nothing() {
        for e in EVENTS {
            let to = transition(S::Completed, e);
            assert!(
                to.is_none() || to == Some(S::Completed),
                "{e:?} left completed"
            );
        }
    }

    #[test]
    fn actions_per_state() {
        use Action as A;
        let want: [(S, &[Action]); 10] = [
            (S::Queued, &[A::Pause, A::Cancel]),
            (S::Uploading, &[A::Pause, A::Cancel]),
            (S::WaitingToRetry, &[A::Pause, A::Cancel]),
            (S::Paused, &[A::Resume, A::Cancel]),
            (S::Completed, &[]),
            (S::Failed, &[A::Retry, A::Cancel]),
            (S::Cancelled, &[A::Retry]),
            (S::FileMissing, &[A::Retry, A::Cancel]),
            (S::FileChanged, &[A::Restart, A::Cancel]),
            (S::NeedsSignIn, &[A::Retry, A::Cancel]),
        ];
        for (s, a) in want {
            assert_eq!(actions(s), a, "{s:?}");
        }
    }
}
