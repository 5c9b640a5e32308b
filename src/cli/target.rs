//! Which stack the command operates: its table, topic, secret, queues and URL.
//!
//! In order: the environment's own variables (`TABLE_NAME`, …) win over everything; then
//! the stack named by `--stack` / `KADOA_STACK`, read from CloudFormation's outputs; then
//! the local stack that `make dev` wrote into this checkout's `.local/dev.env` (never the
//! working directory's; its endpoint only on loopback); then `samconfig.toml`'s
//! `stack_name` (its `default` environment, as `sam deploy` reads it).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::aws::SdkOverrides;
use crate::error::Error;

/// Where `make dev` writes the local stack's settings.
pub const LOCAL_ENV: &str = ".local/dev.env";

/// The stack's resources, as the command needs them.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// Where the settings came from, for messages.
    pub source: String,
    /// The table.
    pub table: Option<String>,
    /// The alert topic.
    pub topic_arn: Option<String>,
    /// The webhook secret.
    pub secret_arn: Option<String>,
    /// The spool queue.
    pub spool_url: Option<String>,
    /// The spool's dead-letter queue.
    pub dead_letter_url: Option<String>,
    /// The webhook's URL.
    pub webhook_url: Option<String>,
    /// The header that carries the secret.
    pub auth_header: String,
    /// The spool's bucket (large bodies).
    pub spool_bucket: Option<String>,
}

/// (environment variable, stack output) for each setting.
pub const SETTINGS: &[(&str, &str)] = &[
    ("TABLE_NAME", "TableName"),
    ("ALERT_TOPIC_ARN", "AlertTopicArn"),
    ("WEBHOOK_SECRET_ARN", "WebhookSecretArn"),
    ("SPOOL_QUEUE_URL", "SpoolQueueUrl"),
    ("SPOOL_DEAD_LETTER_QUEUE_URL", "SpoolDeadLetterQueueUrl"),
    ("WEBHOOK_URL", "WebhookUrl"),
    ("AUTH_HEADER_NAME", "AuthHeaderName"),
    ("SPOOL_BUCKET", "SpoolBucketName"),
];

impl Target {
    /// A required setting, or an error naming where to set it.
    pub fn need<'a>(&self, value: &'a Option<String>, what: &str, variable: &str) -> Result<&'a str, Error> {
        value.as_deref().ok_or_else(|| {
            Error::invalid(format!("no {what} for {}: set {variable}, or name the stack with --stack", self.source))
        })
    }

    /// The table, which every command but `connect --dry-run` needs.
    pub fn table(&self) -> Result<&str, Error> {
        self.need(&self.table, "table", "TABLE_NAME")
    }
}

/// How the stack was named.
pub enum StackChoice {
    /// `--stack` or `KADOA_STACK`.
    Named(String),
    /// The local stack of this checkout (see [`local_env_path`]).
    Local(LocalStack),
    /// `samconfig.toml`'s `stack_name`, and its `region` if it names one.
    Configured {
        /// The stack's name.
        stack: String,
        /// The region `sam deploy` deployed it to.
        region: Option<String>,
    },
    /// None: the environment alone.
    None,
}

impl StackChoice {
    /// What the AWS clients take from the choice where the environment has no value: the
    /// local stack's endpoint, region and credentials, or samconfig.toml's region.
    pub fn sdk_overrides(&self) -> SdkOverrides {
        match self {
            StackChoice::Local(local) => local.aws.clone(),
            StackChoice::Configured { region, .. } => {
                SdkOverrides { region: region.clone(), ..SdkOverrides::default() }
            }
            StackChoice::Named(_) | StackChoice::None => SdkOverrides::default(),
        }
    }
}

/// The local stack, as `make dev` wrote it into `.local/dev.env`.
#[derive(Debug)]
pub struct LocalStack {
    /// Its settings, keyed by stack output name as [`resolve`] takes them.
    pub outputs: HashMap<String, String>,
    /// Its AWS side: a loopback endpoint, the local region and credentials.
    pub aws: SdkOverrides,
}

/// The local stack's file of the checkout this binary was built from. `make dev` writes
/// it there; a `.local/dev.env` in the working directory is anyone's (a cloned repository,
/// a shared folder), so it is not read unless it is this same file. It is read only while
/// the command runs inside that checkout.
pub fn local_env_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(LOCAL_ENV)
}

/// Chooses the stack. The local stack's AWS side is returned in the choice
/// ([`StackChoice::sdk_overrides`]), for the clients: nothing goes into the environment.
pub fn choose(stack: Option<&str>) -> Result<StackChoice, Error> {
    if let Some(stack) = stack {
        return Ok(StackChoice::Named(stack.to_owned()));
    }
    if std::env::var_os("TABLE_NAME").is_some() {
        return Ok(StackChoice::None);
    }
    let own = local_env_path();
    warn_about_a_foreign_local_env(&own);
    // Only inside the checkout: elsewhere the command means the stack samconfig.toml names,
    // or the one given, not whatever `make dev` last left running.
    let text = if working_in_the_checkout() { std::fs::read_to_string(&own).ok() } else { None };
    if let Some(text) = text {
        return Ok(StackChoice::Local(read_local_env(&text, &own)?));
    }
    Ok(match samconfig(Path::new("samconfig.toml"))? {
        Some(SamDefaults { stack_name: Some(stack), region }) => StackChoice::Configured { stack, region },
        _ => StackChoice::None,
    })
}

/// Whether the working directory is this binary's checkout or inside it.
fn working_in_the_checkout() -> bool {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).canonicalize();
    let here = std::env::current_dir().and_then(|here| here.canonicalize());
    matches!((checkout, here), (Ok(checkout), Ok(here)) if here.starts_with(&checkout))
}

/// Says on standard error that a `.local/dev.env` in the working directory, other than
/// this checkout's, is ignored: an operator who meant it learns why it had no effect.
fn warn_about_a_foreign_local_env(own: &Path) {
    let here = Path::new(LOCAL_ENV);
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b);
    if here.is_file() && !same(here, own) {
        eprintln!(
            "note: ignoring {LOCAL_ENV} in the working directory; the local stack is read only from {}",
            own.display()
        );
    }
}

/// The local stack from its file's text (`NAME=value` lines, as `make dev` writes them,
/// read as a dotenv file). Only the stack's settings ([`SETTINGS`]) and the AWS side
/// ([`SdkOverrides`]) are taken: not `KADOA_API_URL`, not a Kadoa key, not `RUST_LOG`.
fn read_local_env(text: &str, file: &Path) -> Result<LocalStack, Error> {
    let mut local = HashMap::new();
    for entry in dotenvy::from_read_iter(text.as_bytes()) {
        // Not the parser's own message: it quotes the line, which may hold a credential.
        let (name, value) = entry.map_err(|_| {
            Error::invalid(format!(
                "{}: the line after its first {} settings is not NAME=value (dotenv syntax)",
                file.display(),
                local.len()
            ))
        })?;
        local.insert(name, value);
    }
    let endpoint = local.remove("AWS_ENDPOINT_URL");
    ensure_loopback(endpoint.as_deref(), file)?;
    let credentials = match (local.remove("AWS_ACCESS_KEY_ID"), local.remove("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => Some((id, secret)),
        _ => None,
    };
    let aws = SdkOverrides { endpoint_url: endpoint, region: local.remove("AWS_REGION"), credentials };
    let outputs = SETTINGS
        .iter()
        .filter_map(|(variable, output)| Some(((*output).to_owned(), local.remove(*variable)?)))
        .collect();
    Ok(LocalStack { outputs, aws })
}

/// The local stack's AWS endpoint must be on this machine: requests to it are signed with
/// whatever credentials the environment holds.
fn ensure_loopback(endpoint: Option<&str>, file: &Path) -> Result<(), Error> {
    let loopback = endpoint.and_then(|endpoint| reqwest::Url::parse(endpoint).ok()).is_some_and(|url| {
        let host = url.host_str().unwrap_or_default();
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
        matches!(url.scheme(), "http" | "https")
            && (host.eq_ignore_ascii_case("localhost") || ip.is_ok_and(|ip| ip.is_loopback()))
    });
    if loopback {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{}: AWS_ENDPOINT_URL {:?} is not on this machine (127.0.0.0/8, ::1 or localhost); the local stack's \
         endpoint must be, so it is not used",
        file.display(),
        crate::error::bounded(endpoint.unwrap_or("(missing)").to_owned())
    )))
}

/// What `samconfig.toml` says of the stack `sam deploy` deploys, from its `default`
/// environment: `[default.deploy.parameters]` over `[default.global.parameters]`, as SAM
/// reads them (other environments, commands and keys are SAM's alone).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SamDefaults {
    /// The stack's name.
    pub stack_name: Option<String>,
    /// Its region.
    pub region: Option<String>,
}

/// `samconfig.toml`: environments, each of commands, each of parameters.
#[derive(Deserialize)]
struct SamConfig {
    #[serde(default)]
    default: SamEnvironment,
}

#[derive(Default, Deserialize)]
struct SamEnvironment {
    #[serde(default)]
    global: SamCommand,
    #[serde(default)]
    deploy: SamCommand,
}

#[derive(Default, Deserialize)]
struct SamCommand {
    #[serde(default)]
    parameters: SamParameters,
}

#[derive(Default, Deserialize)]
struct SamParameters {
    stack_name: Option<String>,
    region: Option<String>,
}

/// `samconfig.toml` at `path`: `None` when there is no such file, an error naming the
/// file when it is not TOML of SAM's shape.
fn samconfig(path: &Path) -> Result<Option<SamDefaults>, Error> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let config: SamConfig = toml::from_str(&text).map_err(|e| {
        let message = e.message().to_owned();
        let at = e.span().map(|span| format!(" at byte {}", span.start)).unwrap_or_default();
        Error::invalid(format!("{}{at}: {}", path.display(), crate::error::bounded(message)))
    })?;
    let SamEnvironment { global, deploy } = config.default;
    let blank = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
    Ok(Some(SamDefaults {
        stack_name: blank(deploy.parameters.stack_name).or(blank(global.parameters.stack_name)),
        region: blank(deploy.parameters.region).or(blank(global.parameters.region)),
    }))
}

/// The target: the stack's outputs (`outputs`, for a named or configured stack) under the
/// environment's variables.
pub fn resolve(source: String, outputs: &HashMap<String, String>) -> Target {
    // By the variable's name, never by position in SETTINGS.
    let pick = |variable: &str| {
        let output = SETTINGS.iter().find(|(name, _)| *name == variable).map(|(_, output)| *output);
        std::env::var(variable).ok().filter(|v| !v.trim().is_empty()).or_else(|| outputs.get(output?).cloned())
    };
    Target {
        source,
        table: pick("TABLE_NAME"),
        topic_arn: pick("ALERT_TOPIC_ARN"),
        secret_arn: pick("WEBHOOK_SECRET_ARN"),
        spool_url: pick("SPOOL_QUEUE_URL"),
        dead_letter_url: pick("SPOOL_DEAD_LETTER_QUEUE_URL"),
        webhook_url: pick("WEBHOOK_URL"),
        auth_header: pick("AUTH_HEADER_NAME").unwrap_or_else(|| "authorization".to_owned()).to_ascii_lowercase(),
        spool_bucket: pick("SPOOL_BUCKET"),
    }
}

/// The outputs of `stack`, from CloudFormation.
pub async fn stack_outputs(
    client: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<HashMap<String, String>, Error> {
    let output = client.describe_stacks().stack_name(stack).send().await.map_err(|e| {
        Error::invalid(format!("stack {stack}: {}", crate::aws::sdk_error("DescribeStacks", e).detail()))
    })?;
    let outputs = output
        .stacks()
        .first()
        .map(|stack| stack.outputs())
        .unwrap_or_default()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect();
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// samconfig.toml's text in a file of its own, read.
    fn sam(text: &str) -> Result<Option<SamDefaults>, Error> {
        let path = std::env::temp_dir().join(format!("kadoa-samconfig-{}-{}.toml", std::process::id(), text.len()));
        std::fs::write(&path, text).unwrap();
        let read = samconfig(&path);
        std::fs::remove_file(&path).unwrap();
        read
    }

    fn named(stack: &str, region: Option<&str>) -> Option<SamDefaults> {
        Some(SamDefaults { stack_name: Some(stack.to_owned()), region: region.map(str::to_owned) })
    }

    #[test]
    fn samconfig_names_the_default_stack() {
        assert_eq!(
            samconfig(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/samconfig.toml"))).unwrap(),
            named("kadoa-webhook", None)
        );
        assert_eq!(samconfig(Path::new("/nonexistent/samconfig.toml")).unwrap(), None);
    }

    #[test]
    fn samconfig_reads_the_default_environment_deploy_over_global() {
        // Environments and commands in any order; prod's and build's stack_name are not ours.
        let text = r#"
            version = 0.1
            [prod.deploy.parameters]
            stack_name = "prod-stack"
            region = "eu-west-1"
            [default.build.parameters]
            stack_name = "built-only"
            [default.deploy.parameters]
            region = "us-west-2"
            capabilities = "CAPABILITY_IAM"
            stack_name = "deployed"
            [default.global.parameters]
            stack_name = "global"
            region = "us-east-1"
        "#;
        assert_eq!(sam(text).unwrap(), named("deployed", Some("us-west-2")));
        let global_only = "[default.global.parameters]\nregion = \"ap-south-1\"\nstack_name = \"g\"\n";
        assert_eq!(sam(global_only).unwrap(), named("g", Some("ap-south-1")));
        let other_environment_only = "[prod.global.parameters]\nstack_name = \"p\"\n";
        assert_eq!(sam(other_environment_only).unwrap(), Some(SamDefaults::default()));
        // A key named stack_name elsewhere (a comment, another table's value) is not the stack.
        let decoy = "# stack_name = \"old\"\n[default.deploy.parameters]\ns3_prefix = \"stack_name = x\"\n";
        assert_eq!(sam(decoy).unwrap(), Some(SamDefaults::default()));
    }

    #[test]
    fn samconfig_parameter_overrides_in_either_form_do_not_disturb_the_stack() {
        for overrides in [
            r#"parameter_overrides = "AlertEmail=\"a@example.com\" RetentionDays=30""#,
            r#"parameter_overrides = ["AlertEmail=a@example.com", "RetentionDays=30"]"#,
        ] {
            let text = format!("version = 0.1\n[default.deploy.parameters]\n{overrides}\nstack_name = \"s\"\n");
            assert_eq!(sam(&text).unwrap(), named("s", None), "{overrides}");
        }
    }

    #[test]
    fn a_samconfig_that_is_not_sams_shape_is_an_error_naming_the_file() {
        for text in ["[default.deploy.parameters\nstack_name = 1", "[default.deploy.parameters]\nstack_name = 7\n"] {
            let error = sam(text).unwrap_err();
            assert!(error.detail().contains("kadoa-samconfig-"), "{}", error.detail());
        }
    }

    #[test]
    fn the_local_stack_endpoint_must_be_loopback() {
        let file = Path::new("dev.env");
        for endpoint in ["http://127.0.0.1:5000", "http://127.9.8.7", "http://[::1]:4566/", "http://LOCALHOST:5000"] {
            assert!(ensure_loopback(Some(endpoint), file).is_ok(), "{endpoint}");
        }
        for endpoint in [
            "http://192.0.2.1:9",
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://127.0.0.1.attacker.example",
            "http://localhost.attacker.example",
            "http://10.0.0.1",
            "http://[::ffff:8.8.8.8]",
            "file:///etc/passwd",
            "not a url",
        ] {
            let error = ensure_loopback(Some(endpoint), file).unwrap_err();
            assert!(error.detail().contains("is not on this machine"), "{endpoint}: {}", error.detail());
        }
        assert!(ensure_loopback(None, file).is_err(), "a local stack without an endpoint would be AWS itself");
    }

    #[test]
    fn only_named_settings_are_read_from_the_local_file() {
        let text = "# made by make dev\nAWS_ENDPOINT_URL=http://127.0.0.1:5000\nTABLE_NAME = t\n\
                    KADOA_API_URL=https://x\nKADOA_API_KEY=k\nRUST_LOG=trace\n";
        let local = read_local_env(text, Path::new("dev.env")).unwrap();
        assert_eq!(local.outputs, HashMap::from([("TableName".to_owned(), "t".to_owned())]));
        assert_eq!(local.aws.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(!SETTINGS.iter().any(|(variable, _)| variable.starts_with("KADOA_")));
    }

    #[test]
    fn the_local_file_is_read_as_dotenv() {
        let text = "\n# comment\nexport AWS_ENDPOINT_URL=\"http://localhost:5000\"\n\
                    AWS_REGION='eu-central-1'\nAWS_ACCESS_KEY_ID=local # the local key\n\
                    AWS_SECRET_ACCESS_KEY=lo=cal\nTABLE_NAME=first\nTABLE_NAME=\"kadoa table\"\n\
                    WEBHOOK_URL=http://127.0.0.1:9000/lambda-url/kadoa-webhook/\r\n";
        let local = read_local_env(text, Path::new("dev.env")).unwrap();
        assert_eq!(local.aws.endpoint_url.as_deref(), Some("http://localhost:5000"), "quoted, exported");
        assert_eq!(local.aws.region.as_deref(), Some("eu-central-1"), "single-quoted");
        assert_eq!(local.aws.credentials, Some(("local".to_owned(), "lo=cal".to_owned())), "comment, = in value");
        assert_eq!(local.outputs["TableName"], "kadoa table", "the last of a repeated name");
        assert_eq!(local.outputs["WebhookUrl"], "http://127.0.0.1:9000/lambda-url/kadoa-webhook/", "CRLF");
        let partial = read_local_env("AWS_ENDPOINT_URL=http://[::1]:5000\nAWS_ACCESS_KEY_ID=a\n", Path::new("f"));
        assert!(partial.unwrap().aws.credentials.is_none(), "a key id without its secret is not a credential");
    }

    #[test]
    fn a_malformed_local_file_is_an_error_that_does_not_quote_it() {
        for text in
            ["AWS_ENDPOINT_URL=http://127.0.0.1:5000\nnoise secret-value\n", "TABLE_NAME=\"unclosed secret-value\n"]
        {
            let error = read_local_env(text, Path::new("/x/dev.env")).unwrap_err();
            assert!(error.detail().starts_with("/x/dev.env: the line after"), "{}", error.detail());
            assert!(!error.detail().contains("secret-value"), "{}", error.detail());
        }
        let foreign = read_local_env("AWS_ENDPOINT_URL=http://192.0.2.1:9\nTABLE_NAME=t\n", Path::new("f"));
        assert!(foreign.unwrap_err().detail().contains("is not on this machine"));
        assert!(read_local_env("TABLE_NAME=t\n", Path::new("f")).is_err(), "no endpoint: AWS itself");
    }

    #[test]
    fn settings_are_resolved_by_name_from_the_outputs() {
        let outputs: HashMap<String, String> =
            SETTINGS.iter().map(|(variable, output)| ((*output).to_owned(), format!("{variable}-value"))).collect();
        let target = resolve("test".to_owned(), &outputs);
        let expected = |variable: &str| {
            std::env::var(variable).ok().filter(|v| !v.trim().is_empty()).unwrap_or(format!("{variable}-value"))
        };
        assert_eq!(target.table, Some(expected("TABLE_NAME")));
        assert_eq!(target.topic_arn, Some(expected("ALERT_TOPIC_ARN")));
        assert_eq!(target.secret_arn, Some(expected("WEBHOOK_SECRET_ARN")));
        assert_eq!(target.spool_url, Some(expected("SPOOL_QUEUE_URL")));
        assert_eq!(target.dead_letter_url, Some(expected("SPOOL_DEAD_LETTER_QUEUE_URL")));
        assert_eq!(target.webhook_url, Some(expected("WEBHOOK_URL")));
        assert_eq!(target.auth_header, expected("AUTH_HEADER_NAME").to_ascii_lowercase());
        assert_eq!(target.spool_bucket, Some(expected("SPOOL_BUCKET")));
    }

    #[test]
    fn a_configured_stack_is_looked_up_in_samconfigs_region() {
        let configured = StackChoice::Configured { stack: "s".into(), region: Some("eu-west-3".into()) };
        assert_eq!(configured.sdk_overrides(), SdkOverrides { region: Some("eu-west-3".into()), ..Default::default() });
        assert_eq!(StackChoice::Named("s".into()).sdk_overrides(), SdkOverrides::default(), "--stack: yours");
    }

    #[tokio::test]
    async fn the_local_stacks_aws_side_reaches_the_clients_without_the_environment() {
        let local = read_local_env(
            "AWS_ENDPOINT_URL=http://127.0.0.1:4566\nAWS_REGION=eu-north-1\n\
             AWS_ACCESS_KEY_ID=local-id\nAWS_SECRET_ACCESS_KEY=local-secret\n",
            Path::new("dev.env"),
        )
        .unwrap();
        let before: Vec<_> = ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID"].map(std::env::var_os).into();
        let config = crate::aws::load_sdk_config_over(&StackChoice::Local(local).sdk_overrides()).await;
        let own = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = own("AWS_ENDPOINT_URL").unwrap_or("http://127.0.0.1:4566".to_owned());
        assert_eq!(config.endpoint_url(), Some(endpoint.as_str()));
        if own("AWS_REGION").is_none() && own("AWS_DEFAULT_REGION").is_none() {
            assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-north-1"));
        }
        if own("AWS_ACCESS_KEY_ID").is_none() {
            use aws_sdk_dynamodb::config::ProvideCredentials;
            let provider = config.credentials_provider().unwrap();
            let credentials = provider.provide_credentials().await.unwrap();
            assert_eq!((credentials.access_key_id(), credentials.secret_access_key()), ("local-id", "local-secret"));
        }
        let after: Vec<_> = ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID"].map(std::env::var_os).into();
        assert_eq!(before, after, "nothing written into the environment");
    }

    #[test]
    fn the_local_stack_is_this_checkouts_own() {
        assert_eq!(local_env_path(), Path::new(env!("CARGO_MANIFEST_DIR")).join(".local/dev.env"));
        assert!(local_env_path().is_absolute(), "never relative to the working directory");
    }
}
