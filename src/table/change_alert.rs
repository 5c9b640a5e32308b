//! The record of a change's rule alert, `CHANGE#<id>#ALERT` beside the change: what was
//! sent (subject, SMS, the matches it listed), to whom and when. Its presence says the
//! alert went; `kadoa changes show` prints it and the outbox announces it on the bus.

use super::{keyed, keys, Attr, Item, Receipt, ENTITY_CHANGE_ALERT};
use crate::alerts::AlertMessage;
use crate::events::DataChange;
use crate::rules::{Match, Matches};
use crate::timestamp::Timestamp;

/// The alert record of `change`, sent as `message` at `alerted_at`.
pub struct ChangeAlertRecord<'a> {
    /// The change.
    pub change: &'a DataChange<'a>,
    /// What it met.
    pub matches: &'a Matches,
    /// What was sent.
    pub message: &'a AlertMessage,
    /// The delivery that stored or re-sent the change.
    pub receipt: Receipt,
}

impl ChangeAlertRecord<'_> {
    /// Its key: the change's partition, [`keys::change_alert_sk`].
    pub fn key(&self) -> (String, String) {
        let change_sk = keys::change_sk(&self.change.change_id);
        (keys::workflow_pk(&self.change.workflow_id), keys::change_alert_sk(&change_sk))
    }

    /// The item, sent at `alerted_at`.
    pub fn to_item(&self, alerted_at: Timestamp) -> Item {
        let (pk, sk) = self.key();
        let change = self.change;
        let mut item = keyed(pk, sk, ENTITY_CHANGE_ALERT);
        item.insert("workflowId".into(), Attr::s(&change.workflow_id));
        item.insert("changeId".into(), Attr::s(&change.change_id));
        item.insert("createdAt".into(), Attr::s(change.created_at.to_key_string()));
        if let Some(name) = &change.workflow_name {
            item.insert("workflowName".into(), Attr::s(name));
        }
        if let Some(url) = &change.url {
            item.insert("url".into(), Attr::s(url));
        }
        item.insert("status".into(), Attr::s("sent"));
        item.insert("alertedAt".into(), Attr::s(alerted_at.to_key_string()));
        item.insert("subject".into(), Attr::s(&self.message.subject));
        item.insert("sms".into(), Attr::s(&self.message.sms));
        item.insert("notify".into(), Attr::s(self.message.notify.as_str()));
        item.insert("matchCount".into(), Attr::n(self.matches.total as u64));
        item.insert("rules".into(), Attr::L(self.matches.rules.iter().map(Attr::s).collect()));
        item.insert("matches".into(), Attr::L(self.matches.kept.iter().map(match_attr).collect()));
        item.insert("arrival".into(), Attr::s(self.receipt.arrival.as_str()));
        self.receipt.stamp(&mut item);
        item
    }
}

/// `{rule, type, field, previous, value, condition, row}` (row counting from 1).
fn match_attr(found: &Match) -> Attr {
    let mut map = vec![
        ("rule".to_owned(), Attr::s(&found.rule)),
        ("type".to_owned(), Attr::s(&found.kind)),
        ("field".to_owned(), Attr::s(&found.field)),
        ("row".to_owned(), Attr::n(found.index as u64 + 1)),
    ];
    for (name, text) in [("previous", &found.previous), ("value", &found.value), ("condition", &found.condition)] {
        if let Some(text) = text {
            map.push((name.to_owned(), Attr::s(text)));
        }
    }
    Attr::M(map)
}
