//! `kadoa`, the operator's command: connect Kadoa to the stack, see its state, browse and
//! export what it stored, test it, rotate its secret, redrive dead letters, reconcile.
//!
//! Exit codes: 0 all is well, 1 something needs attention or failed, 2 usage (clap's own).
//! Standard output is the answer (a table on a terminal, or `--output json|jsonl|csv`);
//! progress and logs go to standard error, logs only with `-v`.

mod commands;
pub mod render;
mod report;
pub mod target;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use self::commands::SUBSCRIBED;
pub use self::render::Format;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "kadoa",
    version,
    about = "Operate the Kadoa webhook stack: connect Kadoa, see status, browse changes, test, rotate, redrive",
    long_about = "Operate the Kadoa webhook stack: connect Kadoa, see status, browse and export changes, \
                  test, rotate the secret, redrive dead letters, reconcile.\n\n\
                  The stack is found by --stack (or KADOA_STACK, or samconfig.toml's stack_name), whose \
                  outputs name its table, topic, secret and queues; the environment variables \
                  (TABLE_NAME, WEBHOOK_SECRET_ARN, …) override them. Next to `make dev`, .local/dev.env \
                  names the local stack and no flag is needed.",
    after_help = "Exit codes: 0 ok, 1 something needs attention or failed, 2 usage."
)]
pub struct Cli {
    /// The CloudFormation stack to operate (default: KADOA_STACK, else samconfig.toml's
    /// stack_name; next to `make dev`, the local stack).
    #[arg(long, global = true, env = "KADOA_STACK", value_name = "NAME")]
    pub stack: Option<String>,
    /// Machine output instead of a table.
    #[arg(long, short = 'o', global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<Format>,
    /// Log to standard error (-v info, -vv debug).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Health of each workflow, recent account events, the spool, dead letters and the last
    /// reconciliation; exits 1 when something needs attention.
    Status,
    /// Browse the stored changes.
    #[command(subcommand)]
    Changes(ChangesCommand),
    /// Export changes, one row per difference field (CSV) or one change per line (JSONL).
    Export(ExportArgs),
    /// The event log, newest first; with --follow, new events as they arrive.
    Events(EventsArgs),
    /// Create or update the Kadoa webhook channel that points at this stack, subscribe it,
    /// and check a test notification arrives.
    Connect(ConnectArgs),
    /// Send an authenticated sample delivery to the stack's URL and show what it did.
    Test,
    /// The webhook secret.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Deliveries that failed every replay.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Store what Kadoa's API has that the table lacks, for a window.
    Reconcile(ReconcileArgs),
    /// Put items stored before the `timeline` index into it (once, after upgrading a stack).
    Backfill(BackfillArgs),
    /// Alert rules on data changes: who is told when a change meets them.
    #[command(subcommand)]
    Rules(Box<RulesCommand>),
}

/// `kadoa rules …`
#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Add a rule: tell people when a change meets it (in effect within a minute).
    #[command(after_help = "Examples:\n  \
        kadoa rules add cheap --field price --below 20 --notify both\n  \
        kadoa rules add price-drop --field price --decreased-by 10% --workflow wf_123\n  \
        kadoa rules add engineers --field title --type added --contains engineer")]
    Add(Box<RuleAddArgs>),
    /// List the rules.
    List,
    /// Remove a rule.
    Remove {
        /// The rule's name.
        name: String,
    },
    /// Which stored changes of the last days a rule would have alerted.
    Test(RuleTestArgs),
}

/// `kadoa rules add`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("condition").multiple(false)))]
pub struct RuleAddArgs {
    /// The rule's name: letters, digits, '-' and '_'.
    pub name: String,
    /// The field key, exact (price) or with '*' for any text (price*).
    #[arg(long, value_name = "KEY")]
    pub field: String,
    /// Only this workflow's changes (default: every workflow).
    #[arg(long, value_name = "ID")]
    pub workflow: Option<String>,
    /// Which differences: added, removed or changed rows, or any (default: changed with
    /// --decreased-by or --increased-by, else any).
    #[arg(long = "type", value_enum, value_name = "KIND")]
    pub difference: Option<crate::rules::DifferenceKind>,
    /// The value is this text (or this number).
    #[arg(long, group = "condition", value_name = "TEXT")]
    pub equals: Option<String>,
    /// The value contains this text, in any case.
    #[arg(long, group = "condition", value_name = "TEXT")]
    pub contains: Option<String>,
    /// The value is a number above N (a changed value: it went above N).
    #[arg(long, group = "condition", value_name = "N", allow_negative_numbers = true)]
    pub above: Option<crate::rules::Number>,
    /// The value is a number below N (a changed value: it fell below N).
    #[arg(long, group = "condition", value_name = "N", allow_negative_numbers = true)]
    pub below: Option<crate::rules::Number>,
    /// A changed number went down by at least N, or N% of what it was.
    #[arg(long, group = "condition", value_name = "N|N%", allow_negative_numbers = true)]
    pub decreased_by: Option<crate::rules::Amount>,
    /// A changed number went up by at least N, or N% of what it was.
    #[arg(long, group = "condition", value_name = "N|N%", allow_negative_numbers = true)]
    pub increased_by: Option<crate::rules::Amount>,
    /// Who is told: the alert topic's email subscription, its SMS one, or both.
    #[arg(long, value_enum, default_value = "email")]
    pub notify: crate::rules::Notify,
}

/// `kadoa rules test`
#[derive(Debug, Args)]
pub struct RuleTestArgs {
    /// The rule's name.
    pub name: String,
    /// How many days of stored changes to replay.
    #[arg(long, value_name = "N", default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

/// `kadoa changes …`
#[derive(Debug, Subcommand)]
pub enum ChangesCommand {
    /// The changes, newest first for one workflow.
    List(WindowArgs),
    /// One change and its differences.
    Show(ShowArgs),
}

/// A time window, optionally one workflow's.
#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// Only this workflow's.
    #[arg(long, value_name = "ID")]
    pub workflow: Option<String>,
    /// At or after this time (RFC 3339, or a date: 2025-01-15).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// At or before this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub until: Option<String>,
}

/// A time on the command line, as the table keys times: RFC 3339, or a date (midnight UTC).
fn parse_time(text: &str) -> Result<String, String> {
    commands::key_time(text).map_err(|e| e.detail().to_owned())
}

/// `kadoa changes show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The change's id.
    pub id: String,
    /// Its workflow (one read; without it, the changes of the last 30 days are searched).
    #[arg(long, value_name = "ID")]
    pub workflow: Option<String>,
    /// Without --workflow: search the changes created since this time (default: 30 days ago).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
}

/// `kadoa export`
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Which changes.
    #[command(flatten)]
    pub window: WindowArgs,
    /// With --output csv: write every cell exactly as stored, even one a spreadsheet would
    /// run as a formula (by default a cell that begins with =, +, -, @, a tab or a CR, and
    /// is not a number, begins with ' instead, and control characters are shown as \x1b).
    #[arg(long)]
    pub csv_exact: bool,
}

/// `kadoa events`
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this workflow's (default: every event).
    #[arg(long, value_name = "ID")]
    pub workflow: Option<String>,
    /// At or after this time.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub since: Option<String>,
    /// Keep printing new events as they are stored (Ctrl-C to stop).
    #[arg(long)]
    pub follow: bool,
}

/// `kadoa connect`
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// A Kadoa API key.
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_env", required_unless_present = "api_key_env")]
    pub api_key: Option<String>,
    /// The environment variable that holds the API key.
    #[arg(long, value_name = "VAR")]
    pub api_key_env: Option<String>,
    /// Show the requests instead of sending them.
    #[arg(long)]
    pub dry_run: bool,
    /// Enable the event types whose Kadoa settings are disabled (their other channels get
    /// them again too); without it they stay disabled and do not reach the stack.
    #[arg(long)]
    pub enable_disabled: bool,
    /// How long to wait for the test notification to be stored.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub wait: u64,
}

/// `kadoa secret …`
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Add a new secret beside the current one (both accepted); with --finish, keep only
    /// the newest.
    Rotate(RotateArgs),
}

/// `kadoa secret rotate`
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Drop the old secret (run it once Kadoa sends the new one).
    #[arg(long)]
    pub finish: bool,
    /// With --finish: first switch Kadoa's channel to the new secret through the API.
    #[arg(long, value_name = "KEY", requires = "finish", conflicts_with = "kadoa_api_key_env")]
    pub kadoa_api_key: Option<String>,
    /// The same, from this environment variable (kept out of shell history).
    #[arg(long, value_name = "VAR", requires = "finish")]
    pub kadoa_api_key_env: Option<String>,
    /// With --finish: drop the old secret without switching Kadoa and without waiting
    /// for the webhook's cache (you switched Kadoa yourself).
    #[arg(long, requires = "finish")]
    pub force: bool,
}

/// `kadoa dlq …`
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// The dead letters: event type, workflow, why they failed, age.
    List,
    /// Move dead letters back into the spool, to be replayed.
    Redrive(RedriveArgs),
}

/// `kadoa dlq redrive`
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Only this message (its id from `kadoa dlq list`).
    #[arg(long, value_name = "MESSAGE_ID")]
    pub id: Option<String>,
}

/// `kadoa reconcile`
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// From this time (RFC 3339, or a date).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from: String,
    /// To this time (default: now).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub to: Option<String>,
}

/// `kadoa backfill`
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Items written per second at most (each is one write unit, and one for its index entry).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub rate: u32,
    /// Go on from where an interrupted run stopped (the key it printed).
    #[arg(long, value_name = "KEY")]
    pub resume: Option<String>,
}

/// Runs the command line; the process's exit code.
pub async fn run(cli: Cli) -> ExitCode {
    let format = cli.output;
    match commands::run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            render::error(&error, format);
            ExitCode::FAILURE
        }
    }
}
