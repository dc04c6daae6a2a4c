//! Process plumbing every role shares, a leaf that imports no role: the configuration error
//! that exits 64 naming the flag, duration flags, the shutdown signal, the memory allocator's
//! settings, the CPU priority of background threads and how they give way to others, and the
//! Kubernetes client built from a kubeconfig or the environment.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A flag or file that cannot be used; the process exits 64 (EX_USAGE) naming it.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    pub flag: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(flag: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            flag,
            message: message.into(),
        }
    }
}

/// Parses a duration flag (`250ms`, `1s`, `5m`).
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, humantime::DurationError> {
    humantime::parse_duration(text)
}

/// Registers for SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C) now, and returns a future
/// that resolves on the first of them. Registering up front matters: a signal that arrives
/// before a handler exists kills the process without draining.
pub(crate) fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {},
            _ = interrupt.recv() => {},
        }
    })
}

/// mimalloc's `mi_option_purge_delay` (its place in `mi_option_e`, `mimalloc.h` of mimalloc
/// 3), which the `libmimalloc-sys` bindings do not name.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets up the allocator the binary installs (mimalloc, in `main.rs`); called first thing,
/// before a second thread. mimalloc rather than glibc's malloc because glibc's arenas are
/// guarded by locks: a request thread that allocates could wait on one held by a background
/// thread at idle priority, which the scheduler may not run for milliseconds (`perf` showed it
/// in the adapter's slowest reads). mimalloc's thread-local heaps take no lock to allocate, and
/// a block freed by another thread is handed back with an atomic operation.
///
/// Two settings keep its resident size at or below glibc's (`benches/fleet.rs`, 10,000 pods:
/// 34.7–37.3 MiB, against 36.8–38.5 with glibc, 38.1–41.6 with mimalloc's purge delay, 75
/// with huge pages as well; 54.5 where the node gives all memory huge pages, unless the
/// process opts out: 39.1):
///
/// - pages it no longer uses are returned to the kernel as soon as they are free (a purge
///   delay of 0 rather than mimalloc's 1 s), unless a `MIMALLOC_PURGE_DELAY` in the
///   environment says otherwise;
/// - no transparent huge pages: the crate's `no_thp` feature keeps mimalloc from asking for
///   them, and the process opts out of them (`PR_SET_THP_DISABLE`, which the kernel checks as
///   memory is touched, so it holds for the memory mimalloc reserved before `main`) where the
///   node backs all memory with them.
pub fn tune_allocator() {
    // SAFETY: mi_option_set_default has no preconditions (it checks the option's place) and
    // leaves an option set from the environment as it is; nothing reads the option
    // concurrently, this being called before a second thread.
    unsafe { libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0) }
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; its extra arguments are 0.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Returns the pages of the calling thread's heap that hold nothing any more to the
/// allocator, and so to the kernel: after this thread freed a large structure (a replaced
/// snapshot). Blocks that live in other threads' pages come back when those threads next
/// allocate.
pub fn give_back_freed_memory() {
    // SAFETY: mi_collect has no preconditions.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The CPU priority of a thread made for background work (the adapter's sources, a simulated
/// fleet standing for other machines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ThreadPriority {
    /// The same as every other thread: it takes its fair share of the cores whatever else
    /// runs beside it.
    #[default]
    Normal,
    /// The lowest there is: a thread that wakes preempts it at once. For a process in a
    /// control group of its own (a container). Such a thread should call [`give_way`] between
    /// pieces of work.
    Idle,
}

impl ThreadPriority {
    /// Moves the calling thread to this priority; `Normal` leaves it as it is. `Idle` is
    /// Linux's `SCHED_IDLE`: the thread runs when no ordinary thread of its control group wants
    /// the core, and an ordinary thread that wakes preempts it at once instead of waiting out
    /// the kernel's time slice (a few milliseconds). No privilege is needed. A thread cannot be
    /// moved back, so only threads made for background work call this. Elsewhere than Linux
    /// it does nothing.
    pub fn apply_to_this_thread(self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        if self == ThreadPriority::Idle {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: pid 0 is the calling thread; `param` outlives the call.
            if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            LOWERED.set(true);
        }
        Ok(())
    }
}

thread_local! {
    /// Whether this thread was moved to [`ThreadPriority::Idle`].
    static LOWERED: Cell<bool> = const { Cell::new(false) };
    /// When this thread last gave way ([`give_way`]).
    static GAVE_WAY: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// How long a lowered thread works on before it offers its core again.
const GIVE_WAY_EVERY: Duration = Duration::from_micros(100);

/// Offers the core to any thread waiting for it, if this thread was lowered to
/// [`ThreadPriority::Idle`] and has not offered it for [`GIVE_WAY_EVERY`]; otherwise does
/// nothing. Lowered threads call it between pieces of work (a page, a namespace).
///
/// Idle priority alone does not keep an ordinary thread from waiting. A thread that *wakes*
/// preempts an idle one at once, but one that is already runnable — preempted for a moment by
/// an interrupt's work, or moved from another core — is picked by fairness: Linux's scheduler
/// (EEVDF) runs whichever runnable thread is owed time, and an idle thread that has waited is
/// owed some. It then keeps the core until the next scheduler tick, up to 4 ms at the common
/// 250 Hz, while the ordinary thread waits (seen with `perf sched` as request threads
/// runnable behind the adapter's background threads). Yielding is a point at which the
/// scheduler picks again, by then with the idle thread's due paid: the waiting thread runs.
/// With no other thread runnable the yield returns at once.
pub fn give_way() {
    if !LOWERED.get() {
        return;
    }
    let now = Instant::now();
    if GAVE_WAY
        .get()
        .is_some_and(|then| now.saturating_duration_since(then) < GIVE_WAY_EVERY)
    {
        return;
    }
    std::thread::yield_now();
    GAVE_WAY.set(Some(Instant::now()));
    #[cfg(test)]
    tests::YIELDS.set(tests::YIELDS.get() + 1);
}

/// How many items [`giving_way`] passes between two chances to [give way](give_way): a chance
/// at every item would read the clock at every item.
const GIVE_WAY_EVERY_ITEMS: usize = 64;

/// `items`, with a chance to [give way](give_way) before the first and then before every
/// [`GIVE_WAY_EVERY_ITEMS`]th: for a lowered thread's loop over many small pieces of work (a
/// snapshot's pods as it is assembled, its objects as it is freed).
pub fn giving_way<I: IntoIterator>(items: I) -> impl Iterator<Item = I::Item> {
    items.into_iter().enumerate().map(|(n, item)| {
        if n % GIVE_WAY_EVERY_ITEMS == 0 {
            give_way();
        }
        item
    })
}

/// A future that [gives way](give_way) after each poll of the one it wraps, so work a lowered
/// thread runs as tasks (reading a page that has arrived) holds its core while another thread
/// waits for no longer than a poll, and no more than [`GIVE_WAY_EVERY`] past one.
pub struct GivingWay<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> GivingWay<F> {
    pub fn new(inner: F) -> GivingWay<F> {
        GivingWay {
            inner: Box::pin(inner),
        }
    }
}

impl<F: Future> Future for GivingWay<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let polled = self.inner.as_mut().poll(cx);
        give_way();
        polled
    }
}

/// Reads the kubeconfig a flag names, if it names one; the error names the flag and the file.
pub fn read_kubeconfig(
    flag: &'static str,
    path: Option<&std::path::Path>,
) -> Result<Option<kube::config::Kubeconfig>, ConfigError> {
    path.map(|path| {
        kube::config::Kubeconfig::read_from(path)
            .map_err(|e| ConfigError::new(flag, format!("{}: {e}", path.display())))
    })
    .transpose()
}

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    #[error("the kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    #[error("no cluster configuration (in-cluster or $KUBECONFIG): {0}")]
    Infer(#[from] kube::config::InferConfigError),
    #[error("the client: {0}")]
    Client(#[from] kube::Error),
}

/// A Kubernetes client from `kubeconfig`, or inferred (in-cluster, then `$KUBECONFIG`).
pub async fn kube_client(
    kubeconfig: Option<kube::config::Kubeconfig>,
) -> Result<kube::Client, KubeClientError> {
    let config = match kubeconfig {
        Some(kubeconfig) => {
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// An error and its causes, `outer: inner: …` — what a transport error alone hides ("error
/// sending request" over a refused certificate, tonic's "transport error").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option set is mimalloc's purge delay: the place holds the default mimalloc 3 gives
    /// it (1,000 ms, `options.c`) beside the option the bindings name three places on
    /// (`os_tag`, 100); once tuned the allocator reads 0 there, and the process has opted out
    /// of transparent huge pages.
    #[test]
    fn tuning_the_allocator_sets_its_purge_delay_to_zero_and_opts_out_of_huge_pages() {
        // SAFETY: mi_option_get has no preconditions.
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("skipped: MIMALLOC_PURGE_DELAY is set in the environment");
            return;
        }
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 1_000);
        assert_eq!(get(libmimalloc_sys::mi_option_os_tag), 100);
        tune_allocator();
        assert_eq!(get(MI_OPTION_PURGE_DELAY), 0);
        #[cfg(target_os = "linux")]
        // SAFETY: PR_GET_THP_DISABLE only reads a flag of this process.
        assert_eq!(
            unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) },
            1
        );
    }

    thread_local! {
        /// How often this thread yielded in [`give_way`].
        pub(super) static YIELDS: Cell<u32> = const { Cell::new(0) };
    }

    /// Runs `work` on a thread of its own lowered to idle priority and gives its answer, or
    /// `None` where there is no such priority (elsewhere than Linux). The clock of giving way
    /// is set by the tests rather than waited on, so a busy machine cannot change an answer.
    fn on_a_lowered_thread<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let answer = std::thread::spawn(move || {
            ThreadPriority::Idle.apply_to_this_thread().map(|()| work())
        })
        .join()
        .expect("thread");
        cfg!(target_os = "linux").then(|| answer.expect("SCHED_IDLE needs no privilege"))
    }

    /// As if the last yield were an interval ago: the next chance gives way.
    fn interval_passed() {
        GAVE_WAY.set(Instant::now().checked_sub(GIVE_WAY_EVERY));
    }

    #[test]
    fn only_a_lowered_thread_gives_way_and_at_most_every_interval() {
        let normal = std::thread::spawn(|| {
            for _ in 0..1000 {
                give_way();
            }
            YIELDS.get()
        });
        assert_eq!(normal.join().expect("thread"), 0, "a normal thread runs on");
        let yields = on_a_lowered_thread(|| {
            give_way();
            let first = YIELDS.get();
            GAVE_WAY.set(Some(Instant::now() + Duration::from_secs(3600)));
            give_way();
            let just_after = YIELDS.get();
            interval_passed();
            give_way();
            (first, just_after, YIELDS.get())
        });
        if let Some(yields) = yields {
            assert_eq!(
                yields,
                (1, 1, 2),
                "gives way at once, not again just after, again an interval later"
            );
        }
    }

    #[test]
    fn a_loop_gives_way_before_every_so_many_items_and_passes_them_all() {
        let outcome = on_a_lowered_thread(|| {
            let mut passed = Vec::new();
            for item in giving_way(0..200) {
                passed.push(item);
                // as if each item took longer than the interval: only the count decides
                interval_passed();
            }
            (passed, YIELDS.get())
        });
        if let Some((passed, yields)) = outcome {
            assert_eq!(passed, (0..200).collect::<Vec<_>>(), "every item, in order");
            assert_eq!(yields, 4, "before items 0, 64, 128 and 192");
        }
    }

    #[test]
    fn a_future_gives_way_after_its_polls_and_gives_its_output() {
        let outcome = on_a_lowered_thread(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            let answer = runtime.block_on(GivingWay::new(async {
                // the first poll ends here; the second gives way again
                tokio::task::yield_now().await;
                interval_passed();
                42
            }));
            (answer, YIELDS.get())
        });
        if let Some(outcome) = outcome {
            assert_eq!(
                outcome,
                (42, 2),
                "the output, and a yield after each of the two polls"
            );
        }
    }
}
