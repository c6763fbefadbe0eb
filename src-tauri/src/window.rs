//! What the shell knows of the window, shared by its parts: the names of the events the
//! window listens to, whether it has focus and whether uploads go on, and the thread
//! policies that keep it responsive.

use std::sync::atomic::AtomicBool;

/// Sent when paths arrived (command line, second launch) that wait for an endpoint.
pub const PENDING_EVENT: &str = "pending-paths";

/// What adding files from the system came to ([`crate::intake::Added`]).
pub const ADDED_EVENT: &str = "files-added";

/// Whether the main window has focus, kept from window events (asking the window from this
/// task would wait for the main thread, which may be busy quitting).
pub static FOCUSED: AtomicBool = AtomicBool::new(true);

/// Whether uploads go on (uploading, queued or waiting to retry), as of the last batch sent:
/// closing the window then keeps them going in the tray.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Marks the calling thread as batch work for the kernel (`SCHED_BATCH`): the same share of
/// the CPU, but its many wake-ups (sockets, file reads) no longer interrupt the window's
/// thread mid-task, which on a busy 2-core machine stretched a 30 ms task past 100 ms.
pub fn yield_to_the_window() {
    tusker_core::platform::batch_thread();
}

/// WebKit makes its IPC receive threads real-time (`SCHED_RR`: directly when it may, else
/// through rtkit or the portal). In this process, the window's, that starved the GTK main
/// thread: as 100,000 files arrived, one such thread spun on a core for 200 ms waiting on
/// the main thread it kept off that core, and the window drew no frame for 120–210 ms. With
/// the normal policy the same thread used 2–9 ms per half second instead of 120. Called when
/// the page opens its feed and with each batch, so that threads of a later connection are
/// caught too (a scan of /proc/self/task: some 30 system calls).
pub fn keep_webkit_threads_fair() {
    tusker_core::platform::no_realtime_threads();
}
