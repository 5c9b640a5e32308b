//! `kadoa rules add | list | remove | test`: the alert rules on data changes, kept in the
//! table; the functions read them again within a minute ([`crate::rules::cache`]).

use serde_json::{json, Map, Value};

use super::browse::{days_back, whole_change, without_index_keys, ChangePages};
use super::{print_exact, Context};
use crate::cli::render::{self, Listing};
use crate::cli::{RuleAddArgs, RuleTestArgs};
use crate::envelope::Envelope;
use crate::error::Error;
use crate::events::DataChange;
use crate::rules::{evaluate, Condition, DifferenceKind, Rule};
use crate::store::browse::{Row, Window};
use crate::store::rules::RuleWrite;

/// `kadoa rules add`
pub async fn add(context: &Context, args: &RuleAddArgs) -> Result<bool, Error> {
    let rule = rule_of(args);
    rule.check().map_err(Error::invalid)?;
    match context.store()?.add_rule(&rule).await? {
        RuleWrite::NameTaken => Err(Error::invalid(format!(
            "a rule named {:?} exists: remove it first (kadoa rules remove {})",
            rule.name, rule.name
        ))),
        RuleWrite::Added => {
            match context.format {
                None => {
                    render::say(Some(("added", 32)), &format!("rule {}: {}", rule.name, rule.describe()))?;
                    render::say(None, "The functions use it within a minute.")?;
                }
                Some(_) => print_exact(&json!({"added": rule}).to_string())?,
            }
            Ok(true)
        }
    }
}

/// The rule `args` describe (checked by the caller).
fn rule_of(args: &RuleAddArgs) -> Rule {
    let condition = match args {
        RuleAddArgs { equals: Some(text), .. } => Some(Condition::Equals(text.clone())),
        RuleAddArgs { contains: Some(text), .. } => Some(Condition::Contains(text.clone())),
        RuleAddArgs { above: Some(number), .. } => Some(Condition::Above(number.clone())),
        RuleAddArgs { below: Some(number), .. } => Some(Condition::Below(number.clone())),
        RuleAddArgs { decreased_by: Some(amount), .. } => Some(Condition::DecreasedBy(amount.clone())),
        RuleAddArgs { increased_by: Some(amount), .. } => Some(Condition::IncreasedBy(amount.clone())),
        _ => None,
    };
    let moves = condition.as_ref().is_some_and(Condition::needs_previous);
    let default_kind = if moves { DifferenceKind::Changed } else { DifferenceKind::Any };
    Rule {
        name: args.name.trim().to_owned(),
        workflow_id: args.workflow.as_deref().map(|id| id.trim().to_owned()),
        field: args.field.clone(),
        difference: args.difference.unwrap_or(default_kind),
        condition,
        notify: args.notify,
    }
}

/// `kadoa rules list`
pub async fn list(context: &Context) -> Result<bool, Error> {
    let mut rules = context.store()?.rules().await?;
    rules.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = rules.iter().map(rule_row).collect();
    let listing = Listing {
        columns: vec![
            ("name", "name"),
            ("workflow", "workflow"),
            ("field", "field"),
            ("rows", "difference"),
            ("condition", "condition"),
            ("notify", "notify"),
        ],
        rows,
        colour: None,
    };
    render::print(&listing, context.format, None)?;
    Ok(true)
}

fn rule_row(rule: &Rule) -> Map<String, Value> {
    let mut row = match serde_json::to_value(rule) {
        Ok(Value::Object(row)) => row,
        _ => Map::new(),
    };
    row.insert("workflow".into(), json!(rule.workflow_id.as_deref().unwrap_or("*")));
    row.insert("condition".into(), json!(rule.condition.as_ref().map(ToString::to_string).unwrap_or_default()));
    row.insert("definition".into(), serde_json::to_value(rule).unwrap_or_default());
    row
}

/// `kadoa rules remove`: exits 1 when there was no such rule.
pub async fn remove(context: &Context, name: &str) -> Result<bool, Error> {
    let removed = context.store()?.remove_rule(name.trim()).await?;
    let shown = crate::error::bounded(name.to_owned());
    match (removed, context.format) {
        (Some(rule), None) => render::say(Some(("removed", 33)), &format!("rule {}: {}", rule.name, rule.describe()))?,
        (Some(rule), Some(_)) => print_exact(&json!({"removed": rule}).to_string())?,
        (None, _) => return Err(Error::invalid(format!("no rule named {shown:?} (kadoa rules list shows them)"))),
    }
    Ok(true)
}

/// `kadoa rules test`: the stored changes of the last `--days` replayed against the rule:
/// "3 of the last 50 changes would have alerted", and which.
pub async fn test(context: &Context, args: &RuleTestArgs) -> Result<bool, Error> {
    let store = context.store()?;
    let name = args.name.trim();
    let rules = store.rules().await?;
    let Some(rule) = rules.iter().find(|rule| rule.name == name) else {
        let shown = crate::error::bounded(name.to_owned());
        return Err(Error::invalid(format!("no rule named {shown:?} (kadoa rules list shows them)")));
    };
    let days = i64::from(args.days);
    let window = Window { workflow: rule.workflow_id.clone(), since: days_back(days), until: None };
    let bar = render::progress(None, "changes replayed");
    let mut pages = ChangePages::new(&store, &window, Some(days))?;
    let (mut seen, mut alerts) = (0, Vec::new());
    while let Some(page) = pages.next().await? {
        for row in page {
            let change = whole_change(&store, without_index_keys(row)).await?;
            seen += 1;
            bar.inc(1);
            if let Some(alert) = would_alert(rule, &change)? {
                alerts.push(alert);
            }
        }
    }
    bar.finish_and_clear();
    alerts.sort_by_key(|alert| std::cmp::Reverse(render::cell(alert.get("createdAt"))));
    print_test(context, rule, args.days, seen, alerts)?;
    Ok(true)
}

/// The alert `rule` would have sent for the stored `change`, if any.
fn would_alert(rule: &Rule, change: &Row) -> Result<Option<Map<String, Value>>, Error> {
    // The stored change as Kadoa sent it, read by the webhook's own parser.
    let metadata = json!({"workflowName": change.get("workflowName")});
    let data = json!({"id": change.get("changeId"), "workflowId": change.get("workflowId"),
        "url": change.get("url"), "createdAt": change.get("createdAt"), "metadata": metadata,
        "differences": change.get("differences").cloned().unwrap_or_else(|| json!([]))});
    let body = json!({"eventType": "workflow_data_change", "timestamp": change.get("createdAt"), "data": data});
    let body = body.to_string();
    let envelope = Envelope::parse(body.as_bytes(), None)?;
    let parsed = DataChange::parse(&envelope)?;
    let matches = evaluate(std::slice::from_ref(rule), &parsed);
    if matches.is_empty() {
        return Ok(None);
    }
    let message = crate::alerts::AlertMessage::change_matched(&parsed, &matches, false);
    let mut alert = Map::new();
    for name in ["createdAt", "workflowId", "changeId"] {
        alert.insert(name.into(), change.get(name).cloned().unwrap_or(Value::Null));
    }
    alert.insert("matches".into(), json!(matches.total));
    alert.insert("subject".into(), json!(message.subject));
    Ok(Some(alert))
}

fn print_test(
    context: &Context,
    rule: &Rule,
    days: u32,
    seen: usize,
    alerts: Vec<Map<String, Value>>,
) -> Result<(), Error> {
    let summary = format!(
        "{} of the last {seen} changes ({days} day{}) would have alerted: rule {}, {}",
        alerts.len(),
        if days == 1 { "" } else { "s" },
        rule.name,
        rule.describe()
    );
    if context.format.is_some() {
        let answer = json!({"rule": rule, "days": days, "changes": seen, "alerting": alerts.len(), "alerts": alerts});
        return match context.format {
            Some(crate::cli::Format::Csv) => render::print(&alert_listing(alerts), context.format, None),
            _ => print_exact(&answer.to_string()),
        };
    }
    render::say(Some(("rule test", 1)), &summary)?;
    render::print(&alert_listing(alerts), None, None)
}

fn alert_listing(rows: Vec<Map<String, Value>>) -> Listing {
    Listing {
        columns: vec![
            ("created", "createdAt"),
            ("workflow", "workflowId"),
            ("change", "changeId"),
            ("matches", "matches"),
            ("subject", "subject"),
        ],
        rows,
        colour: None,
    }
}
