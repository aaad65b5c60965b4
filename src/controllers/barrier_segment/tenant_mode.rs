//! The tenant's information-barrier mode, as last read. Read at start-up and then every
//! minute; a failed read keeps the last known mode (a design is never flipped on a transient
//! error). Until the first read succeeds the mode is unknown, and nothing that depends on it
//! (the generated design, the host segment's filter) is written.

use crate::barriers::IbMode;
use crate::compliance::ComplianceClient;
use futures::Stream;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the mode is read again once known: it changes only by an administrator's switch.
const REREAD: Duration = Duration::from_secs(60);

pub struct TenantMode {
    known: watch::Sender<Option<IbMode>>,
}

impl Default for TenantMode {
    fn default() -> Self {
        TenantMode {
            known: watch::Sender::new(None),
        }
    }
}

impl TenantMode {
    /// The mode as last read; `None` until a read succeeded.
    pub fn get(&self) -> Option<IbMode> {
        *self.known.borrow()
    }

    /// Waits at most `within` for the first read; the mode then known.
    pub async fn read_within(&self, within: Duration) -> Option<IbMode> {
        let mut rx = self.known.subscribe();
        let _ = tokio::time::timeout(within, rx.wait_for(Option::is_some)).await;
        self.get()
    }

    /// Fires when the mode becomes known or changes.
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        futures::stream::unfold(self.known.subscribe(), |mut rx| async move {
            rx.changed().await.ok().map(|()| ((), rx))
        })
    }

    /// Records a read; true if it changed what is known.
    pub fn record(&self, mode: IbMode) -> bool {
        self.known.send_if_modified(|m| {
            let changed = *m != Some(mode);
            *m = Some(mode);
            changed
        })
    }

    /// Reads the mode forever: every `poll` until it is known, then every minute.
    pub async fn follow(self: Arc<Self>, compliance: Arc<ComplianceClient>, poll: Duration) {
        loop {
            let wait = match compliance.ib_mode().await {
                Ok(Some(mode)) => {
                    if self.record(mode) {
                        tracing::info!(mode = %mode, "information-barrier mode read");
                    }
                    REREAD
                }
                Ok(None) => {
                    tracing::warn!("Get-PolicyConfig names no information-barrier mode this operator knows");
                    REREAD
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the information-barrier mode; keeping the last one known");
                    poll.max(Duration::from_secs(1))
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}
