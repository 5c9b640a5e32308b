//! The rules a warm function holds: read from the table at most once a [`REFRESH`], so a
//! delivery does not read them (a change that matches nothing costs what it did before
//! rules existed), and a rule added or removed takes effect within the window.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Rule;
use crate::error::Error;

/// How long a function uses the rules it read before reading them again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// Where the rules are kept (the table, as deployed).
pub trait RuleSource: Send + Sync {
    /// Every rule.
    fn load_rules(&self) -> BoxFuture<'_, Result<Vec<Rule>, Error>>;
}

/// The rules, cached.
pub struct RuleBook {
    source: Arc<dyn RuleSource>,
    refresh: Duration,
    held: Mutex<Option<(Instant, Arc<Vec<Rule>>)>>,
}

impl RuleBook {
    /// Rules read from `source`, kept for [`REFRESH`].
    pub fn new(source: Arc<dyn RuleSource>) -> Self {
        Self { source, refresh: REFRESH, held: Mutex::new(None) }
    }

    /// The rules now: the ones held while they are fresh, else read again. When reading
    /// fails, the ones held stay in use (and are tried again on the next change); with
    /// none held, the error is the caller's (the delivery is tried again, nothing lost).
    pub async fn current(&self) -> Result<Arc<Vec<Rule>>, Error> {
        let mut held = self.held.lock().await;
        if let Some((read_at, rules)) = held.as_ref() {
            if read_at.elapsed() < self.refresh {
                return Ok(Arc::clone(rules));
            }
        }
        match self.source.load_rules().await {
            Ok(rules) => {
                let rules = Arc::new(rules);
                *held = Some((Instant::now(), Arc::clone(&rules)));
                Ok(rules)
            }
            Err(error) => match held.as_ref() {
                Some((_, rules)) => {
                    tracing::warn!(error = error.detail(), "rules not read again; using the ones held");
                    Ok(Arc::clone(rules))
                }
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex as StdMutex;

    use futures::FutureExt;

    use super::*;
    use crate::rules::{DifferenceKind, Notify};

    /// A table of rules that counts its reads and can fail them.
    #[derive(Default)]
    struct Table {
        rules: StdMutex<Vec<Rule>>,
        reads: AtomicUsize,
        down: StdMutex<bool>,
    }

    impl Table {
        fn set(&self, names: &[&str]) {
            let rule = |name: &&str| Rule {
                name: (*name).to_owned(),
                workflow_id: None,
                field: "price".into(),
                difference: DifferenceKind::Any,
                condition: None,
                notify: Notify::Email,
            };
            *self.rules.lock().unwrap() = names.iter().map(rule).collect();
        }
    }

    impl RuleSource for Table {
        fn load_rules(&self) -> BoxFuture<'_, Result<Vec<Rule>, Error>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let result = match *self.down.lock().unwrap() {
                true => Err(Error::Unavailable("DynamoDB is down".into())),
                false => Ok(self.rules.lock().unwrap().clone()),
            };
            async move { result }.boxed()
        }
    }

    fn names(rules: &[Rule]) -> Vec<&str> {
        rules.iter().map(|rule| rule.name.as_str()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn rules_are_read_once_a_minute_and_changes_show_within_it() {
        let table = Arc::new(Table::default());
        table.set(&["a"]);
        let book = RuleBook::new(table.clone());
        assert_eq!(names(&book.current().await.unwrap()), ["a"]);
        table.set(&["a", "b"]);
        for _ in 0..100 {
            assert_eq!(names(&book.current().await.unwrap()), ["a"], "held within the minute");
        }
        assert_eq!(table.reads.load(Ordering::SeqCst), 1, "one read for a hundred and one changes");
        tokio::time::advance(REFRESH - Duration::from_millis(1)).await;
        assert_eq!(names(&book.current().await.unwrap()), ["a"]);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(names(&book.current().await.unwrap()), ["a", "b"], "read again after a minute");
        assert_eq!(table.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_read_keeps_the_rules_held_and_without_any_is_an_error() {
        let table = Arc::new(Table::default());
        *table.down.lock().unwrap() = true;
        let book = RuleBook::new(table.clone());
        assert!(matches!(book.current().await, Err(Error::Unavailable(_))), "nothing held: try the delivery again");
        *table.down.lock().unwrap() = false;
        table.set(&["a"]);
        assert_eq!(names(&book.current().await.unwrap()), ["a"]);
        *table.down.lock().unwrap() = true;
        tokio::time::advance(REFRESH).await;
        assert_eq!(names(&book.current().await.unwrap()), ["a"], "the rules held, while the table is down");
        *table.down.lock().unwrap() = false;
        table.set(&[]);
        assert!(book.current().await.unwrap().is_empty(), "read again on the next change");
    }
}
