//! The vocabulary every entry point shares: what an applied event answers
//! ([`Outcome`]) and did ([`Applied`]), what the event log records ([`EventStatus`]), and
//! how the event arrived ([`Arrival`]).

use crate::timestamp::Timestamp;

/// The `status` of an accepted delivery's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored for the first time.
    Stored,
    /// Already stored or already decided: a retry.
    Duplicate,
    /// People were told.
    Alerted,
    /// Recorded, nobody told (inside the repeat window, already healthy, or older than
    /// the newest event of the workflow).
    Suppressed,
    /// An event type this version does not know: logged.
    Accepted,
    /// Could not be applied now; spooled, and applied later by the replay.
    Queued,
}

impl Outcome {
    /// The HTTP status of the answer: 202 for a spooled delivery, 200 for the rest.
    pub fn status(self) -> u16 {
        match self {
            Self::Queued => 202,
            _ => 200,
        }
    }

    /// The word in the answer's `status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
            Self::Alerted => "alerted",
            Self::Suppressed => "suppressed",
            Self::Accepted => "accepted",
            Self::Queued => "queued",
        }
    }
}

/// What applying one event did: its answer, and what the metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// The answer.
    pub outcome: Outcome,
    /// Older than the newest event of its workflow: answered `suppressed`, counted `stale`.
    pub stale: bool,
    /// Differences stored by this call (a duplicate stores none).
    pub differences: usize,
    /// When this call handed an alert to SNS.
    pub alerted_at: Option<Timestamp>,
}

impl Applied {
    /// Applied with `outcome`, nothing stored, nobody told.
    pub fn answered(outcome: Outcome) -> Self {
        Self { outcome, stale: false, differences: 0, alerted_at: None }
    }

    /// What an event recorded with `status` did.
    pub fn recorded(status: EventStatus) -> Self {
        Self { stale: status == EventStatus::Stale, ..Self::answered(status.outcome()) }
    }

    /// The metrics' `Outcome`: the answer, with `stale` told apart from `suppressed`.
    pub fn metric_outcome(&self) -> &'static str {
        if self.stale {
            "stale"
        } else {
            self.outcome.as_str()
        }
    }
}

/// The `status` attribute of an event-log item: what was decided about the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventStatus {
    /// A known event, stored (a data change, or an event that is only logged).
    Stored,
    /// An event type this version does not know, logged.
    Accepted,
    /// People were told.
    Alerted,
    /// Recorded without telling anybody (repeat window, already healthy, alerts off).
    Suppressed,
    /// Older than the newest event seen for the workflow: changed nothing.
    Stale,
    /// The newest event again, decided before.
    Duplicate,
}

impl EventStatus {
    /// The attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Accepted => "accepted",
            Self::Alerted => "alerted",
            Self::Suppressed => "suppressed",
            Self::Stale => "stale",
            Self::Duplicate => "duplicate",
        }
    }

    /// What the sender is answered for an event recorded with this status.
    pub fn outcome(self) -> Outcome {
        match self {
            Self::Stored => Outcome::Stored,
            Self::Accepted => Outcome::Accepted,
            Self::Alerted => Outcome::Alerted,
            // `stale` is reported as `suppressed`: the contract's status set.
            Self::Suppressed | Self::Stale => Outcome::Suppressed,
            Self::Duplicate => Outcome::Duplicate,
        }
    }
}

/// How an event reached the receiver; the event log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Kadoa's webhook, answered as it came.
    Webhook,
    /// A delivery that was spooled when it could not be applied, applied later.
    Replay,
    /// Found in Kadoa's API by reconciliation: it never reached the receiver.
    Reconcile,
}

impl Arrival {
    /// Whether people read it later than Kadoa reported it.
    pub fn is_late(self) -> bool {
        !matches!(self, Self::Webhook)
    }

    /// The `arrival` attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Replay => "replay",
            Self::Reconcile => "reconcile",
        }
    }
}
