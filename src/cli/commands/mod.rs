//! Each command, given the stack it operates ([`Context`]).

mod backfill;
mod browse;
mod connect;
mod dlq;
mod notifications;
mod rules;
mod secret;
mod status;

pub use self::connect::SUBSCRIBED;

use serde_json::Value;

use super::render::{self, Format};
use super::report::{emit, Step, Steps};
use super::target::{self, StackChoice, Target};
use super::{ChangesCommand, Cli, Command, DlqCommand, ReconcileArgs, RulesCommand, SecretCommand};
use crate::components::OperatorClients;
use crate::error::Error;
use crate::store::Store;
use crate::timestamp::Timestamp;

/// What every command works with.
pub struct Context {
    /// The stack's resources.
    pub target: Target,
    /// `--output`
    pub format: Option<Format>,
    /// The AWS clients, from the composition root (the caller's credentials, or the
    /// local endpoint).
    pub clients: OperatorClients,
}

impl Context {
    /// The table.
    pub fn store(&self) -> Result<Store, Error> {
        Ok(Store::new(self.clients.aws.dynamodb.clone(), self.target.table()?.to_owned()))
    }

    /// An SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        (*self.clients.aws.sqs).clone()
    }

    /// A Secrets Manager client.
    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        (*self.clients.aws.secrets_manager).clone()
    }

    /// The webhook secret in use: its lines (the newest last), the seconds since this value
    /// was written when Secrets Manager says, and its version (a rotation writes only while
    /// it is still the one in use).
    pub async fn secret(&self) -> Result<WebhookSecret, Error> {
        let arn = self.target.need(&self.target.secret_arn, "webhook secret", "WEBHOOK_SECRET_ARN")?;
        let output = self
            .secrets()
            .get_secret_value()
            .secret_id(arn)
            .version_stage(crate::secrets::CURRENT)
            .send()
            .await
            .map_err(|e| crate::aws::sdk_error("GetSecretValue", e))?;
        let lines: Vec<String> = output
            .secret_string()
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        if lines.is_empty() {
            return Err(Error::invalid("the webhook secret is empty"));
        }
        let age = output.created_date().map(|created| Timestamp::now().unix_seconds() - created.secs());
        let version = output.version_id().map(str::to_owned);
        let version = version.ok_or_else(|| Error::internal("GetSecretValue", "no version id"))?;
        Ok(WebhookSecret { lines, age, version })
    }

    /// The secret Kadoa should send: the newest line.
    pub async fn newest_secret(&self) -> Result<String, Error> {
        Ok(self.secret().await?.lines.pop().unwrap_or_default())
    }
}

/// The webhook secret as read from Secrets Manager.
pub struct WebhookSecret {
    /// Its lines, the newest last (never empty).
    pub lines: Vec<String>,
    /// Seconds since this version was written, when Secrets Manager says.
    pub age: Option<i64>,
    /// The version read.
    pub version: String,
}

/// Runs `cli`'s command: `Ok(true)` all well, `Ok(false)` something needs attention.
pub async fn run(cli: Cli) -> Result<bool, Error> {
    let choice = target::choose(cli.stack.as_deref())?;
    let clients = OperatorClients::load(&choice.sdk_overrides()).await;
    let target = match choice {
        StackChoice::Named(stack) | StackChoice::Configured { stack, .. } => {
            let outputs = target::stack_outputs(&clients.cloudformation, &stack).await?;
            target::resolve(format!("stack {stack}"), &outputs)
        }
        StackChoice::Local(local) => {
            target::resolve(format!("the local stack ({})", target::local_env_path().display()), &local.outputs)
        }
        StackChoice::None => target::resolve("the environment".to_owned(), &Default::default()),
    };
    let context = Context { target, format: cli.output, clients };
    match cli.command {
        Command::Status => status::run(&context).await,
        Command::Changes(ChangesCommand::List(window)) => browse::list_changes(&context, &window).await,
        Command::Changes(ChangesCommand::Show(show)) => browse::show_change(&context, &show).await,
        Command::Export(export) => browse::export(&context, &export).await,
        Command::Events(events) => browse::events(&context, &events).await,
        Command::Connect(connect) => connect::connect(&context, &connect).await,
        Command::Test => connect::test(&context).await,
        Command::Secret(SecretCommand::Rotate(rotate)) => secret::rotate(&context, &rotate).await,
        Command::Dlq(DlqCommand::List) => dlq::list(&context).await,
        Command::Dlq(DlqCommand::Redrive(redrive)) => dlq::redrive(&context, &redrive).await,
        Command::Reconcile(reconcile) => reconcile_window(&context, &reconcile).await,
        Command::Backfill(backfill) => backfill::run(&context, &backfill).await,
        Command::Rules(command) => match *command {
            RulesCommand::Add(add) => rules::add(&context, &add).await,
            RulesCommand::List => rules::list(&context).await,
            RulesCommand::Remove { name } => rules::remove(&context, &name).await,
            RulesCommand::Test(test) => rules::test(&context, &test).await,
        },
    }
}

/// A time as the table keys it: RFC 3339, or a date (midnight UTC).
pub fn key_time(text: &str) -> Result<String, Error> {
    let text = text.trim();
    let parsed = Timestamp::parse_rfc3339(text).or_else(|| Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z")));
    parsed.map(Timestamp::to_key_string).ok_or_else(|| {
        Error::invalid(format!("{:?} is not an RFC 3339 time or a date", crate::error::bounded(text.into())))
    })
}

async fn reconcile_window(context: &Context, args: &ReconcileArgs) -> Result<bool, Error> {
    use crate::config::KadoaApiSettings;
    use crate::kadoa_api::{ApiRetry, KadoaApi};
    let from = Timestamp::parse_rfc3339(&args.from)
        .ok_or_else(|| Error::invalid(format!("--from {:?} is not an RFC 3339 time", args.from)))?;
    let to = match &args.to {
        Some(to) => Timestamp::parse_rfc3339(to)
            .ok_or_else(|| Error::invalid(format!("--to {to:?} is not an RFC 3339 time")))?,
        None => Timestamp::now(),
    };
    if to <= from {
        return Err(Error::invalid("--to must be after --from"));
    }
    let lookup = |name: &str| std::env::var(name).ok();
    let settings = crate::Settings::for_reconcile(|name| match name {
        "TABLE_NAME" => context.target.table.clone(),
        "ALERT_TOPIC_ARN" => context.target.topic_arn.clone().or_else(|| lookup(name)),
        other => lookup(other),
    })
    .map_err(|e| Error::invalid(e.to_string()))?;
    let api_settings = KadoaApiSettings::from_lookup(lookup).map_err(|e| Error::invalid(e.to_string()))?;
    let components = context.clients.components(settings);
    let key = crate::secrets::kadoa_api_key(&api_settings, &context.secrets()).await?;
    let api = KadoaApi::new(&api_settings.url, key, ApiRetry::default())?;
    let receiver = components.receiver();
    let retention = components.settings.rules.retention_days;
    let reconciler = crate::reconcile::Reconciler::new(&api, &receiver, &components.store, retention);
    let bar = render::progress(None, "reconciling");
    let report = reconciler.run(from, to, &|line| bar.set_message(line)).await;
    bar.finish_and_clear();
    match context.format {
        None => report.to_string().lines().try_for_each(|line| render::say(None, line))?,
        Some(_) => print_exact(&serde_json::to_string(&report).map_err(|e| Error::internal("json", e))?)?,
    }
    Ok(report.is_clean() && report.skipped.is_empty() && report.outstanding.is_empty())
}

/// One line of machine output (JSON, JSON lines: their format escapes) to standard output,
/// exactly. Human output goes through [`render::say`].
pub fn print_exact(text: &str) -> Result<(), Error> {
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(())
}

/// Prints a report of `steps` and what they came to (`outcome`, a JSON object): see
/// [`Steps`].
pub fn report(context: &Context, steps: &[(String, String)], outcome: Value) -> Result<(), Error> {
    let steps = steps.iter().map(|(step, result)| Step::new(step, result)).collect();
    emit(&Steps { steps, outcome }, context.format)
}
