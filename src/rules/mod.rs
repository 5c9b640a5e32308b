//! Alert rules on data changes: "tell me when a price falls below 20", "when a job titled
//! *engineer* appears". A rule ([`rule`]) names a workflow (or all), a field, a kind of
//! difference and a condition; [`matching`] finds the differences of a change that meet
//! the rules (pure, numbers compared exactly, [`number`]); [`cache`] holds the rules in a
//! warm function. The receiver tells people once per change (see
//! `crate::receiver` and docs/rules.md).

pub mod cache;
pub mod matching;
pub mod number;
pub mod rule;

pub use cache::{RuleBook, RuleSource};
pub use matching::{evaluate, Match, Matches};
pub use number::Number;
pub use rule::{Amount, Condition, DifferenceKind, Notify, Rule};
