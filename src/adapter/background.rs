//! The adapter's background work — scraping the exporters and reading their pages, querying
//! Prometheus, re-reading the values file, assembling snapshots — runs here, on threads of its
//! own, apart from the runtime that serves requests: nothing a request waits for is queued
//! behind it.
//!
//! Apart is not always enough. On a small pod, when a page arrives the thread reading it holds
//! a core, and a request thread that wakes on that core waits out the kernel's time slice (one
//! to three milliseconds) before it runs. With `--background-priority idle` (what the shipped
//! Deployment sets) these threads run at the lowest CPU priority, `SCHED_IDLE`, and a waking
//! request thread preempts them at once. A request thread that is already runnable — put off
//! its core for a moment by an interrupt's work, or by its client on the same core — is not
//! preempting anything, and the scheduler may hand the core to an idle thread that is owed
//! time, until its next tick; so at idle priority background work also
//! [gives way](crate::process::give_way) between pieces of work: after each poll of its tasks,
//! between pages and every few dozen objects while assembling, and while freeing a replaced
//! snapshot.
//!
//! That priority counts within the control group, so it is right only where the adapter has
//! one of its own — its container. Where it shares one with other busy processes (a shell
//! session with a build running, a CI job), every one of them comes first, and background work
//! waits while values age (`kubemind_adapter_source_newest_value_age_seconds` shows it). So
//! the flag's default is `normal`: background work takes its fair share of the cores wherever
//! the adapter runs. In its container, idle work waits only while the adapter's own request
//! threads keep every core of its CPU limit busy, far beyond what HorizontalPodAutoscalers ask.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::process::{GivingWay, ThreadPriority};

/// A single-threaded runtime on a thread of its own, with its own blocking pool, every thread
/// at the chosen priority. It runs until the process ends.
pub(crate) struct Background {
    handle: tokio::runtime::Handle,
}

impl Background {
    /// Starts the runtime and its thread.
    pub fn start(priority: ThreadPriority) -> std::io::Result<Background> {
        let lower = move || lower_this_thread(priority);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("background")
            // the blocking pool's threads: large pages are read and snapshots assembled there
            .on_thread_start(lower)
            .build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("background".into())
            .spawn(move || {
                lower();
                runtime.block_on(std::future::pending::<()>());
            })?;
        Ok(Background { handle })
    }

    /// Runs `work` on the background runtime; at idle priority it
    /// [gives way](crate::process::give_way) after each poll.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        self.handle.spawn(GivingWay::new(work))
    }
}

/// Moves the calling thread to `priority`; if that fails, says so once (the blocking pool
/// starts threads again and again) and the thread runs at normal priority.
fn lower_this_thread(priority: ThreadPriority) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    if let Err(error) = priority.apply_to_this_thread() {
        WARNED.call_once(|| {
            tracing::warn!(%error, "background work runs at normal priority: its threads could not be lowered");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheduling policy of the calling thread, from `/proc` (`SCHED_IDLE` is 5).
    #[cfg(target_os = "linux")]
    fn policy_of_this_thread() -> i64 {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
        // the fields after the command name, which is in parentheses; policy is field 41
        let after_name = stat.rsplit_once(')').expect("a command name").1;
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        fields[41 - 3].parse().expect("a policy")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn background_threads_run_at_the_priority_asked_for() {
        const SCHED_IDLE: i64 = 5;
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        for (priority, expected) in [
            (ThreadPriority::Idle, SCHED_IDLE),
            (ThreadPriority::Normal, 0),
        ] {
            let background = Background::start(priority).expect("background");
            let (on_runtime, on_blocking_pool) = runtime.block_on(async {
                let (tell, told) = tokio::sync::oneshot::channel();
                background.spawn(async move {
                    let on_runtime = policy_of_this_thread();
                    let on_blocking_pool = tokio::task::spawn_blocking(policy_of_this_thread)
                        .await
                        .expect("blocking");
                    let _ = tell.send((on_runtime, on_blocking_pool));
                });
                told.await.expect("the background task answers")
            });
            assert_eq!(on_runtime, expected, "{priority:?}: the runtime's thread");
            assert_eq!(
                on_blocking_pool, expected,
                "{priority:?}: its blocking pool's"
            );
        }
        assert_eq!(
            policy_of_this_thread(),
            0,
            "the caller's thread is left as it was"
        );
    }
}
