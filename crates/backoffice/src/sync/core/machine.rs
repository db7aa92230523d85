//! The sync target state machine, as one function from (state, event) to what happens next.
//!
//! ```text
//! queued ──deliver──▶ delivered ──register applies──────────────▶ synced            terminal
//!   │                 ▲   ├──register in a sale, no retry──────────▶ skipped_busy      terminal
//!   │                 │   ├──register in a sale, retry_when_free──▶ waiting ──free──▶ queued
//!   │                 │   │                                            └──deadline──▶ expired
//!   │                 │   └──error / deadline─────────────────────▶ failed            terminal
//!   │                 └──reconnects── awaiting_reconnect ──deadline──▶ expired        terminal
//!   └──register offline when asked, no queue_offline─────────────▶ skipped_offline   terminal
//! ```
//!
//! A register offline when asked starts `awaiting_reconnect` if the job asked to queue it
//! (otherwise `skipped_offline`): its hello delivers it, like any queued target, and the register
//! still refuses it during a sale (delivered → waiting). It never waits past its deadline, the
//! queue's end.
//!
//! Terminal states never move again: whichever of "the register answered" and "the deadline
//! passed" comes first wins, and the other is ignored. That is what makes every target end in
//! exactly one terminal state. Deadlines, reasons and what the register hears are the caller's
//! ([`super::Core`]); this table only says where a target goes.

use regsync_protocol::sync::TargetState;

/// Something that happened to one open target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetEvent {
    /// Its register is connected: send it (again) now.
    Send,
    /// The register applied it.
    Applied,
    /// The register is in a sale and applied nothing.
    Busy { retry_when_free: bool },
    /// The register could not apply it.
    Failed,
    /// The register is free: its sale ended, or it said hello outside a sale.
    Free,
    /// The register's connection closed.
    Disconnected,
    /// The target's deadline passed.
    Deadline,
}

impl TargetEvent {
    pub const ALL: [TargetEvent; 8] = [
        TargetEvent::Send,
        TargetEvent::Applied,
        TargetEvent::Busy {
            retry_when_free: true,
        },
        TargetEvent::Busy {
            retry_when_free: false,
        },
        TargetEvent::Failed,
        TargetEvent::Free,
        TargetEvent::Disconnected,
        TargetEvent::Deadline,
    ];
}

/// What a target does on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing: the event is late, repeated or does not concern this state.
    Ignore,
    /// Keeps its state, with a new deadline (a shorter one after its register dropped).
    Stay,
    /// Moves to this state.
    To(TargetState),
}

/// The transition table, top to bottom as the diagram above reads.
pub fn next(state: TargetState, event: TargetEvent) -> Next {
    use TargetEvent as E;
    use TargetState::{
        AwaitingReconnect, Delivered, Expired, Failed, Queued, SkippedBusy, Synced, Waiting,
    };
    match (state, event) {
        (state, _) if state.is_terminal() => Next::Ignore,
        // Offline and queued: only its reconnection (a send) or the queue's end moves it. An
        // answer cannot come: it was never sent.
        (AwaitingReconnect, E::Send) => Next::To(Delivered),
        (AwaitingReconnect, E::Deadline) => Next::To(Expired),
        (AwaitingReconnect, _) => Next::Ignore,
        // A delivered target is sent again after a reconnect; applying is by target id, so the
        // register applies it once.
        (Queued | Delivered, E::Send) => Next::To(Delivered),
        (Waiting, E::Send) => Next::Ignore,
        // Whatever copy the register answered, it has the menu.
        (Queued | Delivered | Waiting, E::Applied) => Next::To(Synced),
        (Delivered, E::Busy { retry_when_free }) => Next::To(if retry_when_free {
            Waiting
        } else {
            SkippedBusy
        }),
        (Queued | Waiting, E::Busy { .. }) => Next::Ignore,
        (Delivered, E::Failed) => Next::To(Failed),
        (Queued | Waiting, E::Failed) => Next::Ignore,
        (Waiting, E::Free) => Next::To(Queued),
        (Queued | Delivered, E::Free) => Next::Ignore,
        (Queued | Delivered, E::Disconnected) => Next::Stay,
        (Waiting, E::Disconnected) => Next::Ignore,
        (Queued | Delivered, E::Deadline) => Next::To(Failed),
        (Waiting, E::Deadline) => Next::To(Expired),
        // Unreachable: the first arm takes every terminal state.
        (_, _) => Next::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetEvent as E;
    use TargetState as S;

    /// Every state × event pair, spelled out: the table above must say exactly this.
    #[test]
    fn every_state_and_event_has_the_designed_next_step() {
        let retry = E::Busy {
            retry_when_free: true,
        };
        let no_retry = E::Busy {
            retry_when_free: false,
        };
        #[rustfmt::skip]
        let expected: [(S, [Next; 8]); 4] = [
            //              Send                   Applied               Busy(retry)          Busy(no retry)            Failed                 Free                 Disconnected  Deadline
            (S::Queued,    [Next::To(S::Delivered), Next::To(S::Synced), Next::Ignore,         Next::Ignore,             Next::Ignore,          Next::Ignore,        Next::Stay,   Next::To(S::Failed)]),
            (S::Delivered, [Next::To(S::Delivered), Next::To(S::Synced), Next::To(S::Waiting), Next::To(S::SkippedBusy), Next::To(S::Failed),   Next::Ignore,        Next::Stay,   Next::To(S::Failed)]),
            (S::Waiting,   [Next::Ignore,           Next::To(S::Synced), Next::Ignore,         Next::Ignore,             Next::Ignore,          Next::To(S::Queued), Next::Ignore, Next::To(S::Expired)]),
            (S::AwaitingReconnect,
                           [Next::To(S::Delivered), Next::Ignore,        Next::Ignore,         Next::Ignore,             Next::Ignore,          Next::Ignore,        Next::Ignore, Next::To(S::Expired)]),
        ];
        assert_eq!(E::ALL[2], retry);
        assert_eq!(E::ALL[3], no_retry);
        for (state, row) in expected {
            for (event, want) in E::ALL.into_iter().zip(row) {
                assert_eq!(next(state, event), want, "{state:?} on {event:?}");
            }
        }
        for state in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in E::ALL {
                assert_eq!(next(state, event), Next::Ignore, "{state:?} is terminal");
            }
        }
    }

    #[test]
    fn no_open_state_is_stuck_and_nothing_leaves_a_terminal_state() {
        for state in S::ALL {
            let moves = E::ALL
                .into_iter()
                .filter(|&e| matches!(next(state, e), Next::To(_)))
                .count();
            if state.is_terminal() {
                assert_eq!(moves, 0, "{state:?}");
            } else {
                // The deadline always moves an open target somewhere terminal.
                assert!(
                    matches!(next(state, E::Deadline), Next::To(to) if to.is_terminal()),
                    "{state:?}"
                );
            }
        }
    }
}
