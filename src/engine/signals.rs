//! Ctrl-C and SIGTERM, which end a run (or a watch) cleanly.
//!
//! A command that must answer a signal from its very start (a scale run
//! waiting for its lock, `status -w` before its first draw) calls
//! [`install`] first: from then on a signal is caught and remembered, so
//! [`interrupted`] sees it even when it came before anything waited for
//! it. Other commands keep the default: a signal ends them at once.

use std::sync::OnceLock;

use tokio::sync::watch;

/// Whether a signal has come, once [`install`]ed.
static SEEN: OnceLock<watch::Receiver<bool>> = OnceLock::new();

/// Catches SIGINT and SIGTERM from now on (inside the runtime).
pub fn install() {
    if SEEN.get().is_some() {
        return;
    }
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered here, at once: the handlers are in place before the
        // caller's next step, not when a task is first polled.
        let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return;
        };
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let _ = tx.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(true);
    });
    let _ = SEEN.set(rx);
}

/// True when a signal has come since [`install`].
pub fn seen() -> bool {
    SEEN.get().is_some_and(|rx| *rx.borrow())
}

/// Resolves on Ctrl-C or SIGTERM (at once if one came since [`install`],
/// which it calls: one way of catching signals, whoever asks first).
pub async fn interrupted() {
    install();
    match SEEN.get() {
        Some(rx) => {
            let mut rx = rx.clone();
            if rx.wait_for(|seen| *seen).await.is_ok() {
                return;
            }
            // The catching task is gone (the runtime is shutting down).
            std::future::pending().await
        }
        // No handler could be registered: no signal can be caught.
        None => std::future::pending().await,
    }
}
