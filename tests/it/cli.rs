//! The `kadoa` command, run as a process against moto (and the fake Kadoa API): output,
//! exit codes, idempotence.

use std::process::Output;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::kadoa::FakeKadoa;
use crate::support::moto::moto;
use crate::support::{http_server, Harness, PATIENT, SECRET};

const KEY: &str = "kadoa-key";

/// The environment a command gets for `harness`'s stack (as a stack's outputs would give).
pub(crate) fn stack_env(harness: &Harness) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_ENDPOINT_URL", moto().endpoint.clone()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("TABLE_NAME", harness.table.clone()),
        ("ALERT_TOPIC_ARN", harness.topic_arn.clone()),
        // These tests are not about time: a starved moto must not time the command out.
        (kadoa_webhook::aws::PATIENCE_VARIABLE, PATIENT.as_secs().to_string()),
    ];
    if let Some(arn) = &harness.secret_arn {
        env.push(("WEBHOOK_SECRET_ARN", arn.clone()));
    }
    if let Some(spool) = &harness.spool {
        env.push(("SPOOL_QUEUE_URL", spool.queue_url.clone()));
        env.push(("SPOOL_DEAD_LETTER_QUEUE_URL", spool.dead_letter_url.clone()));
        env.push(("SPOOL_BUCKET", spool.bucket.clone()));
    }
    env
}

/// Runs `kadoa args…` with `env` only, from a directory without samconfig.toml or
/// .local/dev.env; without blocking this test's runtime (the fakes are served on it).
/// Its exit code and standard error go to the test's output, shown when the test fails.
pub(crate) async fn kadoa(args: &[&str], env: &[(&'static str, String)]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_kadoa"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .unwrap();
    show_stderr(args, &output);
    output
}

/// `kadoa args…`'s exit code and standard error, in the test's captured output.
pub fn show_stderr(args: &[&str], output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("$ kadoa {} → {:?}\n{}", args.join(" "), output.status.code(), stderr.trim_end());
}

pub(crate) fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

fn change(id: &str, workflow: &str, created_at: &str, fields: Value) -> String {
    json!({"eventType": "workflow_data_change", "timestamp": created_at,
        "data": {"id": id, "workflowId": workflow, "createdAt": created_at, "url": "https://shop.example/p",
                 "differences": [{"type": "changed", "fields": fields}]}})
    .to_string()
}

fn failed(workflow: &str, at: &str) -> String {
    json!({"eventType": "workflow_failed", "timestamp": at,
        "data": {"workflowId": workflow, "workflowName": "Shop", "reason": "blocked"}})
    .to_string()
}

#[tokio::test]
async fn help_needs_no_environment_and_matches_its_snapshot() {
    let help = kadoa(&["--help"], &[]).await;
    assert_eq!(help.status.code(), Some(0));
    let expected = include_str!("snapshots/kadoa-help.txt");
    assert_eq!(stdout(&help), expected, "update tests/it/snapshots/kadoa-help.txt if the change is meant");
    for command in
        ["status", "changes", "export", "events", "connect", "test", "secret", "dlq", "reconcile", "backfill", "rules"]
    {
        let help = kadoa(&[command, "--help"], &[]).await;
        assert_eq!(help.status.code(), Some(0), "{command} --help");
        assert!(stdout(&help).contains("Usage: kadoa"), "{command}");
    }
    assert_eq!(kadoa(&[], &[]).await.status.code(), Some(2), "usage");
    assert_eq!(kadoa(&["changes", "list", "--nope"], &[]).await.status.code(), Some(2));
    // No stack and no table: a clear error, exit 1.
    let lost = kadoa(&["status"], &[]).await;
    assert_eq!(lost.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&lost.stderr).contains("kadoa: no table for the environment"), "{lost:?}");
}

#[tokio::test]
async fn status_says_what_needs_attention() {
    let harness = Harness::builder().spool().build().await;
    let env = stack_env(&harness);
    harness.deliver(&change("c1", "wf_1", "2025-01-15T10:00:00Z", json!([{"key": "price", "value": 2}]))).await;
    harness.deliver(&failed("wf_2", "2025-01-15T10:05:00Z")).await;
    let credits = json!({"eventType": "credits_low", "timestamp": kadoa_webhook::timestamp::Timestamp::now().to_key_string(),
        "data": {"message": "10 credits left"}});
    harness.deliver(&credits.to_string()).await;

    let status = kadoa(&["status"], &env).await;
    assert_eq!(status.status.code(), Some(1), "a failing workflow needs attention");
    let text = stdout(&status);
    assert!(text.contains("wf_2") && text.contains("failing") && text.contains("workflow_failed"), "{text}");
    assert!(text.contains("credits_low"), "the week's account events: {text}");
    assert!(text.contains("Needs attention: workflow wf_2 is failing"), "{text}");

    let recovered =
        json!({"eventType": "workflow_recovered", "timestamp": "2025-01-15T11:00:00Z", "data": {"workflowId": "wf_2"}});
    harness.deliver(&recovered.to_string()).await;
    let status = kadoa(&["status", "--output", "json"], &env).await;
    assert_eq!(status.status.code(), Some(0), "{}", stdout(&status));
    let answer = json_out(&status);
    assert_eq!(answer["workflows"][0]["health"], "healthy");
    assert_eq!(answer["spool"], json!({"waiting": 0, "oldestSeconds": null, "deadLetters": 0}));
    assert_eq!(answer["attention"], json!([]));

    // A dead letter needs attention.
    let dead = &harness.spool.as_ref().unwrap().dead_letter_url;
    harness.sqs.send_message().queue_url(dead).message_body("{}").send().await.unwrap();
    let status = kadoa(&["status", "-o", "json"], &env).await;
    assert_eq!(status.status.code(), Some(1));
    assert_eq!(json_out(&status)["attention"], json!(["1 dead letters: see `kadoa dlq list`"]));
}

#[tokio::test]
async fn changes_are_listed_shown_and_exported() {
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    let price = json!([{"key": "price", "value": 2, "previousValue": 1}, {"key": "name", "value": "Café"}]);
    harness.deliver(&change("c1", "wf_1", "2025-01-15T10:00:00Z", price)).await;
    harness.deliver(&change("c2", "wf_1", "2025-01-15T11:00:00Z", json!([{"key": "stock", "value": 0}]))).await;
    harness.deliver(&change("c3", "wf_9", "2025-01-15T12:00:00Z", json!([{"key": "stock", "value": 5}]))).await;

    let listed = kadoa(&["changes", "list", "--workflow", "wf_1", "-o", "json"], &env).await;
    assert_eq!(listed.status.code(), Some(0));
    let ids: Vec<Value> = json_out(&listed).as_array().unwrap().iter().map(|c| c["changeId"].clone()).collect();
    assert_eq!(ids, [json!("c2"), json!("c1")], "newest first");
    let window = kadoa(&["changes", "list", "--since", "2025-01-15T10:30:00Z", "-o", "jsonl"], &env).await;
    assert_eq!(stdout(&window).lines().count(), 2, "{}", stdout(&window));
    // Table-wide listings read the days of their window (the last week by default).
    let table = stdout(&kadoa(&["changes", "list", "--since", "2025-01-15"], &env).await);
    let until = kadoa(&["changes", "list", "--until", "2025-01-15T11:00:00Z", "-o", "jsonl"], &env).await;
    assert_eq!(stdout(&until).lines().count(), 2, "--until alone: the week before it: {}", stdout(&until));
    assert!(table.contains("c3") && table.contains("1 (+0 ~1 -0)"), "{table}");

    let shown = kadoa(&["changes", "show", "c1", "--since", "2025-01-01"], &env).await;
    assert_eq!(shown.status.code(), Some(0));
    assert!(stdout(&shown).contains("~ price: 1 → 2, name: Café"), "{}", stdout(&shown));
    let missing = kadoa(&["changes", "show", "nope"], &env).await;
    assert_eq!(missing.status.code(), Some(1));

    let csv = kadoa(&["export", "--workflow", "wf_1", "-o", "csv"], &env).await;
    assert_eq!(csv.status.code(), Some(0));
    let text = stdout(&csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "workflowId,changeId,createdAt,index,type,key,value,previousValue");
    assert_eq!(lines.len(), 4, "one row per difference field: {text}");
    assert!(lines.contains(&"wf_1,c1,2025-01-15T10:00:00.000Z,0,changed,price,2,1"), "{text}");
    let jsonl = stdout(&kadoa(&["export"], &env).await);
    let exported: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(exported.len(), 3);
    assert!(exported.iter().all(|c| c["differences"].is_array()));
}

#[tokio::test]
async fn a_large_change_is_exported_whole_from_its_parts() {
    let harness = Harness::new().await;
    let text = "x".repeat(300);
    let differences: Vec<Value> =
        (0..1500).map(|i| json!({"type": "added", "fields": [{"key": format!("k{i}"), "value": text}]})).collect();
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z",
        "data": {"id": "big", "workflowId": "wf_1", "differences": differences}});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    assert!(!harness.items_of("changePart").await.is_empty(), "stored in parts");
    let csv = stdout(&kadoa(&["export", "-o", "csv"], &stack_env(&harness)).await);
    assert_eq!(csv.lines().count(), 1 + 1500);
}

#[tokio::test]
async fn the_event_log_is_listed_and_followed() {
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    harness.deliver(&failed("wf_1", "2025-01-15T10:00:00Z")).await;
    let events = kadoa(&["events", "--since", "2025-01-15", "-o", "jsonl"], &env).await;
    let lines: Vec<Value> = stdout(&events).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (lines[0]["eventType"].as_str(), lines[0]["status"].as_str()),
        (Some("workflow_failed"), Some("alerted"))
    );
    assert!(lines[0]["alertSubject"].as_str().unwrap().contains("failed"), "{}", lines[0]);

    let mut follow = tokio::process::Command::new(env!("CARGO_BIN_EXE_kadoa"))
        .args(["events", "--workflow", "wf_1", "--follow", "-o", "jsonl"])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(std::env::temp_dir())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(follow.stdout.take().unwrap());
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    out.read_line(&mut line).await.unwrap();
    assert!(line.contains("workflow_failed"), "{line}");
    // Dated a minute ago, stored now: following looks back a day of event time.
    let a_minute_ago = kadoa_webhook::timestamp::Timestamp::now().plus_millis(-60_000).unwrap().to_key_string();
    let recovered =
        json!({"eventType": "workflow_recovered", "timestamp": a_minute_ago, "data": {"workflowId": "wf_1"}});
    harness.deliver(&recovered.to_string()).await;
    line.clear();
    tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut line)).await.unwrap().unwrap();
    assert!(line.contains("workflow_recovered"), "the new event, as it is stored: {line}");
    follow.kill().await.unwrap();
}

const WEBHOOK_URL: &str = "https://abc.lambda-url.us-east-1.on.aws/";

/// `harness`'s environment, with Kadoa at `fake` and the stack's URL.
fn connect_env(harness: &Harness, fake: &FakeKadoa) -> Vec<(&'static str, String)> {
    let mut env = stack_env(harness);
    env.push(("KADOA_API_URL", fake.url.clone()));
    env.push(("WEBHOOK_URL", WEBHOOK_URL.to_owned()));
    env
}

/// Runs `kadoa connect args…` while playing Kadoa: once it asks for the test notification,
/// the mock change reaches the webhook as any delivery would.
async fn connect_playing_kadoa(harness: &Harness, fake: &FakeKadoa, args: &[&str]) -> Output {
    let env = connect_env(harness, fake);
    let tests_before = fake.tests();
    let mut command = vec!["connect", "--api-key", KEY, "--wait", "30"];
    command.extend_from_slice(args);
    let args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
    let run = tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kadoa(&args, &env).await
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fake.tests() == tests_before && !run.is_finished() {
        assert!(tokio::time::Instant::now() < deadline, "no test notification asked for");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if fake.tests() > tests_before {
        let now = kadoa_webhook::timestamp::Timestamp::now().to_key_string();
        let id = format!("mock-change-{}", fake.tests());
        harness.deliver(&change(&id, "wf_test", &now, json!([{"key": "price", "value": 1}]))).await;
    }
    run.await.unwrap()
}

/// The id of the channel that points at the stack.
fn our_channel(fake: &FakeKadoa) -> String {
    let channels = fake.channels();
    let ours: Vec<&Value> = channels.iter().filter(|c| c["config"]["webhookUrl"] == WEBHOOK_URL).collect();
    assert_eq!(ours.len(), 1, "one channel points at the stack: {channels:?}");
    ours[0]["id"].as_str().unwrap().to_owned()
}

/// (workflow or `-`, event type) → (enabled, channel ids).
fn subscription(enabled: bool, channels: &[&str]) -> (bool, Vec<String>) {
    (enabled, channels.iter().map(|c| (*c).to_owned()).collect())
}

fn pair(workflow: &str, event_type: &str) -> (String, String) {
    (workflow.to_owned(), event_type.to_owned())
}

#[tokio::test]
async fn connect_creates_subscribes_tests_and_then_changes_nothing() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut env = connect_env(&harness, &fake);
    env.push(("MY_KADOA_KEY", KEY.to_owned()));

    let dry = kadoa(&["connect", "--api-key-env", "MY_KADOA_KEY", "--dry-run"], &env).await;
    assert_eq!(dry.status.code(), Some(0));
    let text = stdout(&dry);
    assert!(text.contains("would send: POST /v5/notifications/channels") && text.contains("****"), "{text}");
    assert_eq!(text.matches("would send: POST /v5/notifications/settings").count(), 6, "{text}");
    assert!(text.contains("would send: POST /v5/notifications/test"), "{text}");
    assert!(!text.contains(SECRET), "the secret is never printed");
    assert!(fake.writes().is_empty() && fake.tests() == 0, "a dry run sends nothing: {:?}", fake.writes());

    let connected = connect_playing_kadoa(&harness, &fake, &[]).await;
    let text = stdout(&connected);
    assert_eq!(connected.status.code(), Some(0), "{text}");
    assert!(text.contains("created: https://abc.lambda-url.us-east-1.on.aws/"), "{text}");
    assert!(text.contains("workflow_failed: no settings yet: created, with our channel"), "{text}");
    assert!(text.contains("stored as change mock-change"), "{text}");
    let channels = fake.channels();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0]["config"]["auth"], json!({"type": "bearer", "token": SECRET}));
    assert_eq!(channels[0]["config"]["webhookUrl"], WEBHOOK_URL);
    let subscribed = fake.subscriptions();
    assert_eq!(subscribed.len(), 6);
    assert!(!subscribed.contains_key(&pair("-", "workflow_finished")), "workflow_recovered would be suppressed");
    assert!(subscribed.values().all(|s| *s == subscription(true, &["ch_1"])), "{subscribed:?}");
    assert_eq!(fake.violations(), Vec::<String>::new(), "every body as Kadoa's description asks");

    let writes = fake.writes().len();
    let again = kadoa(&["connect", "--api-key", KEY, "-o", "json"], &env).await;
    assert_eq!(again.status.code(), Some(0));
    let answer = json_out(&again);
    assert_eq!(answer["changed"], false);
    assert_eq!(answer["subscriptions"]["workflow_failed"], "alreadyThere");
    assert_eq!(fake.writes().len(), writes, "a second run sends no POST or PUT: {:?}", fake.writes());
    assert_eq!(fake.tests(), 1);

    let wrong = kadoa(&["connect", "--api-key", "nope"], &env).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Kadoa refused the API key (401)"));
}

#[tokio::test]
async fn connect_joins_settings_that_send_elsewhere_and_leaves_disabled_ones_alone() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    fake.add_channel(json!({"id": "mail", "name": "Ops e-mail", "channelType": "EMAIL",
        "config": {"recipients": ["ops@example.com"]}}));
    fake.add_settings(None, "workflow_failed", true, &["mail"]);
    fake.add_settings(None, "credits_low", false, &["mail"]);
    fake.add_settings(Some("wf_9"), "workflow_data_change", true, &["mail"]);
    let env = connect_env(&harness, &fake);

    let dry = kadoa(&["connect", "--api-key", KEY, "--dry-run"], &env).await;
    let text = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{text}");
    assert!(text.contains(r#"would send: PUT /v5/notifications/settings/set_1 {"channelIds":["mail","<new channel>"],"enabled":true,"eventConfiguration":{"digest":false},"eventType":"workflow_failed"}"#), "{text}");
    assert_eq!(text.matches("would send: POST /v5/notifications/settings").count(), 4, "{text}");
    assert!(text.contains("credits_low: disabled in Kadoa: left alone"), "{text}");
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());

    let connected = connect_playing_kadoa(&harness, &fake, &["-o", "json"]).await;
    assert_eq!(connected.status.code(), Some(0), "{}", stdout(&connected));
    let answer = json_out(&connected);
    assert_eq!(answer["notReaching"], json!(["credits_low"]));
    assert_eq!(answer["subscriptions"]["workflow_failed"], "added");
    assert_eq!(answer["subscriptions"]["credits_low"], "disabledLeftAlone");
    assert_eq!(answer["subscriptions"]["workflow_data_change"], "created");
    assert_eq!(answer["testStored"], true);
    let ours = our_channel(&fake);
    let subscribed = fake.subscriptions();
    assert_eq!(subscribed[&pair("-", "workflow_failed")], subscription(true, &["mail", &ours]), "the e-mail kept");
    assert_eq!(subscribed[&pair("-", "credits_low")], subscription(false, &["mail"]), "disabled, untouched");
    assert_eq!(subscribed[&pair("wf_9", "workflow_data_change")], subscription(true, &["mail"]), "a workflow's own");
    assert_eq!(subscribed[&pair("-", "workflow_data_change")], subscription(true, &[&ours]));
    assert_eq!(subscribed.len(), 7);
    assert_eq!(fake.violations(), Vec::<String>::new());
    let settings = fake.settings();
    let failed = settings.iter().find(|s| s["eventType"] == "workflow_failed").unwrap();
    assert_eq!(failed["eventConfiguration"], json!({"digest": false}), "its configuration kept");

    let writes = fake.writes().len();
    let again = kadoa(&["connect", "--api-key", KEY], &env).await;
    let text = stdout(&again);
    assert_eq!(again.status.code(), Some(0), "{text}");
    assert!(text.contains("not reaching the stack: credits_low (disabled in Kadoa)"), "{text}");
    assert_eq!(fake.writes().len(), writes, "nothing sent the second time: {:?}", fake.writes());

    let enabled = connect_playing_kadoa(&harness, &fake, &["--enable-disabled"]).await;
    let text = stdout(&enabled);
    assert_eq!(enabled.status.code(), Some(0), "{text}");
    assert!(text.contains("credits_low: was disabled: enabled (--enable-disabled)"), "{text}");
    assert_eq!(fake.subscriptions()[&pair("-", "credits_low")], subscription(true, &["mail", &ours]));
    let sent: Vec<String> = fake.writes().split_off(writes);
    assert_eq!(sent, ["PUT /v5/notifications/settings/set_2", "POST /v5/notifications/test"], "only what was disabled");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn connect_replaces_a_stale_url_or_secret_in_place() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let name = format!("AWS {}", harness.table);
    // Made by an earlier connect, before the stack was deployed again and its secret rotated.
    fake.add_channel(json!({"id": "ch_old", "name": name, "channelType": "WEBHOOK",
        "config": {"webhookUrl": "https://old.lambda-url.us-east-1.on.aws/", "httpMethod": "POST",
                   "auth": {"type": "bearer", "token": "an-old-secret"}}}));
    fake.add_settings(None, "workflow_failed", true, &["ch_old"]);

    let connected = connect_playing_kadoa(&harness, &fake, &[]).await;
    let text = stdout(&connected);
    assert_eq!(connected.status.code(), Some(0), "{text}");
    assert!(text.contains("ch_old updated: https://abc.lambda-url.us-east-1.on.aws/, the current secret"), "{text}");
    assert!(text.contains("workflow_failed: our channel already there"), "{text}");
    assert_eq!(our_channel(&fake), "ch_old", "updated in place, no second channel");
    assert_eq!(fake.channels().len(), 1);
    assert_eq!(fake.channels()[0]["config"]["auth"], json!({"type": "bearer", "token": SECRET}));
    let subscribed = fake.subscriptions();
    assert!(subscribed.values().all(|s| *s == subscription(true, &["ch_old"])) && subscribed.len() == 6);
    let writes = fake.writes();
    assert_eq!(writes[0], "PUT /v5/notifications/channels/ch_old");
    assert!(!writes.contains(&"PUT /v5/notifications/settings/set_1".to_owned()), "{writes:?}");
    assert_eq!(writes.iter().filter(|w| *w == "POST /v5/notifications/settings").count(), 5, "{writes:?}");

    // Only the secret stale: the channel is replaced, every subscription already there.
    let mut channel = fake.channels()[0].clone();
    channel["config"]["auth"]["token"] = json!("rotated-away");
    fake.remove_channel("ch_old");
    fake.add_channel(channel);
    let writes = fake.writes().len();
    let connected = connect_playing_kadoa(&harness, &fake, &["-o", "json"]).await;
    assert_eq!(connected.status.code(), Some(0), "{}", stdout(&connected));
    assert_eq!(json_out(&connected)["changed"], true);
    let sent: Vec<String> = fake.writes().split_off(writes);
    assert_eq!(sent, ["PUT /v5/notifications/channels/ch_old", "POST /v5/notifications/test"]);
    assert_eq!(fake.channels()[0]["config"]["auth"], json!({"type": "bearer", "token": SECRET}));
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn test_sends_an_authenticated_sample_and_shows_it_stored() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let mut env = stack_env(&harness);
    env.push(("WEBHOOK_URL", http_server::serve(harness.app.clone()).await));
    let tested = kadoa(&["test"], &env).await;
    let text = stdout(&tested);
    assert_eq!(tested.status.code(), Some(0), "{text} {}", String::from_utf8_lossy(&tested.stderr));
    assert!(text.contains("answer: 200 {\"eventType\":\"workflow_data_change\",\"status\":\"stored\"}"), "{text}");
    assert!(text.contains("stored: yes, 1 difference(s)") && text.contains("~ price: 24.99 → 19.99"), "{text}");
    assert_eq!(harness.items_of("change").await.len(), 1);
}

#[tokio::test]
async fn test_never_follows_a_redirect_with_the_secret() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let elsewhere = MockServer::start().await;
    Mock::given(any()).respond_with(ResponseTemplate::new(200).set_body_string("{}")).mount(&elsewhere).await;
    for status in [302, 307] {
        let webhook = MockServer::start().await;
        let location = format!("{}/collect", elsewhere.uri());
        Mock::given(any())
            .respond_with(ResponseTemplate::new(status).insert_header("location", location.as_str()))
            .mount(&webhook)
            .await;
        let mut env = stack_env(&harness);
        env.push(("WEBHOOK_URL", webhook.uri()));
        env.push(("AUTH_HEADER_NAME", "X-Webhook-Secret".to_owned()));
        let tested = kadoa(&["test"], &env).await;
        let stderr = String::from_utf8_lossy(&tested.stderr);
        assert_eq!(tested.status.code(), Some(1), "{status}: {stderr}");
        assert!(
            stderr.contains(&format!("the webhook answered {status}, a redirect to \"{location}\": not followed")),
            "{stderr}"
        );
        let sent = webhook.received_requests().await.unwrap();
        assert_eq!(sent[0].headers.get("x-webhook-secret").unwrap(), SECRET, "the stack itself gets it");
    }
    let received = elsewhere.received_requests().await.unwrap();
    assert!(received.is_empty(), "nothing reached the other origin, least of all the secret: {received:?}");
}

#[tokio::test]
async fn connect_sends_the_api_key_to_no_other_origin() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let elsewhere = FakeKadoa::start(KEY).await;
    for status in [302, 307, 308] {
        fake.redirect_with(&elsewhere.url, status);
        let connected = kadoa(&["connect", "--api-key", KEY], &connect_env(&harness, &fake)).await;
        let stderr = String::from_utf8_lossy(&connected.stderr);
        assert_eq!(connected.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "Kadoa answered {status} for /v5/notifications/channels, to another origin: not followed"
            )),
            "{stderr}"
        );
    }
    assert!(elsewhere.requests().is_empty(), "the key went nowhere else: {:?}", elsewhere.requests());
}

#[tokio::test]
async fn test_reads_a_bounded_answer() {
    use wiremock::matchers::any;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let webhook = MockServer::start().await;
    let endless = format!("{{\"status\":\"{}\"}}", "x".repeat(100 * 1024));
    Mock::given(any()).respond_with(ResponseTemplate::new(200).set_body_string(endless)).mount(&webhook).await;
    let mut env = stack_env(&harness);
    env.push(("WEBHOOK_URL", webhook.uri()));
    let tested = kadoa(&["test"], &env).await;
    let stderr = String::from_utf8_lossy(&tested.stderr);
    assert_eq!(tested.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the webhook answered more than 65536 bytes: not read further"), "{stderr}");
}

#[tokio::test]
async fn a_secret_rotation_adds_then_finishes_and_switches_kadoa() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let url = "https://abc.lambda-url.us-east-1.on.aws/";
    fake.add_channel(json!({"id": "ch_7", "name": "AWS", "channelType": "WEBHOOK",
        "config": {"webhookUrl": url, "httpMethod": "POST", "auth": {"type": "bearer", "token": SECRET}}}));
    fake.add_channel(json!({"id": "mail", "name": "Ops e-mail", "channelType": "EMAIL",
        "config": {"recipients": ["ops@example.com"]}}));
    fake.add_settings(None, "workflow_failed", true, &["mail", "ch_7"]);
    let subscribed = fake.subscriptions();
    let mut env = stack_env(&harness);
    env.push(("KADOA_API_URL", fake.url.clone()));
    env.push(("WEBHOOK_URL", url.to_owned()));
    let secret = || async {
        let sm = aws_sdk_secretsmanager::Client::new(&crate::support::sdk_config(&moto().endpoint).await);
        let arn = harness.secret_arn.as_ref().unwrap();
        // The version in use (moto answers an unlabelled read with the first version it made).
        let value = sm.get_secret_value().secret_id(arn).version_stage("AWSCURRENT").send().await.unwrap();
        value.secret_string().unwrap().lines().map(str::to_owned).collect::<Vec<String>>()
    };

    assert_eq!(kadoa(&["secret", "rotate"], &env).await.status.code(), Some(0));
    let lines = secret().await;
    assert_eq!((lines.len(), lines[0].as_str()), (2, SECRET), "old and new, both accepted");
    assert_eq!(lines[1].len(), 48);
    let twice = kadoa(&["secret", "rotate"], &env).await;
    assert_eq!(twice.status.code(), Some(1), "a rotation under way is finished first");

    let early = kadoa(&["secret", "rotate", "--finish", "--kadoa-api-key", KEY], &env).await;
    assert_eq!(early.status.code(), Some(1), "the webhook's 5-minute cache comes first");
    assert!(String::from_utf8_lossy(&early.stderr).contains("wait"), "{early:?}");
    let blind = kadoa(&["secret", "rotate", "--finish"], &env).await;
    assert_eq!(blind.status.code(), Some(1), "dropping the old secret needs Kadoa switched, or --force");
    assert_eq!(secret().await.len(), 2, "nothing dropped");
    let finished = kadoa(&["secret", "rotate", "--finish", "--kadoa-api-key", KEY, "--force"], &env).await;
    assert_eq!(finished.status.code(), Some(0), "{}", stdout(&finished));
    assert_eq!(secret().await, [lines[1].clone()]);
    assert_eq!(fake.channels()[0]["config"]["auth"], json!({"type": "bearer", "token": lines[1]}));
    assert_eq!(fake.writes(), ["PUT /v5/notifications/channels/ch_7"], "the channel only, in place");
    assert_eq!(fake.subscriptions(), subscribed, "the settings as they were");
    assert_eq!(fake.violations(), Vec::<String>::new());
    assert!(!stdout(&finished).contains(&lines[1]), "the secret is never printed");
    let nothing = kadoa(&["secret", "rotate", "--finish"], &env).await;
    assert!(stdout(&nothing).contains("nothing to finish"));
}

/// The lines of the webhook secret in use.
async fn secret_in_use(harness: &Harness) -> Vec<String> {
    let sm = aws_sdk_secretsmanager::Client::new(&crate::support::sdk_config(&moto().endpoint).await);
    let arn = harness.secret_arn.as_ref().unwrap();
    let value = sm.get_secret_value().secret_id(arn).version_stage("AWSCURRENT").send().await.unwrap();
    value.secret_string().unwrap().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn of_two_rotations_at_once_exactly_one_wins() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let env = stack_env(&harness);
    let (a, b) = tokio::join!(kadoa(&["secret", "rotate"], &env), kadoa(&["secret", "rotate"], &env));
    assert_eq!([&a, &b].iter().filter(|run| run.status.success()).count(), 1, "{a:?} {b:?}");
    let lost = if a.status.success() { &b } else { &a };
    let why = String::from_utf8_lossy(&lost.stderr);
    assert_eq!(lost.status.code(), Some(1));
    // Both read the one-line secret (another rotation won), or the loser read the winner's.
    assert!(why.contains("another rotation won") || why.contains("a rotation is under way"), "{why}");
    let lines = secret_in_use(&harness).await;
    assert_eq!((lines.len(), lines[0].as_str()), (2, SECRET), "one new secret beside the old: {lines:?}");

    // Deterministically: two writers that read the same version (the second's read is stale).
    let sm = aws_sdk_secretsmanager::Client::new(&crate::support::sdk_config(&moto().endpoint).await);
    let arn = harness.secret_arn.as_ref().unwrap();
    let read = sm.get_secret_value().secret_id(arn).version_stage("AWSCURRENT").send().await.unwrap();
    let read = read.version_id().unwrap();
    let replace = kadoa_webhook::secrets::replace_current;
    replace(&sm, arn, read, format!("{SECRET}\nfirst")).await.unwrap();
    let second = replace(&sm, arn, read, format!("{SECRET}\nsecond")).await.unwrap_err();
    assert!(second.detail().contains("another rotation won"), "{second:?}");
    assert_eq!(secret_in_use(&harness).await, [SECRET, "first"], "the second never in use");
}

#[tokio::test]
async fn dead_letters_are_listed_and_redriven_once() {
    let harness = Harness::builder().spool().build().await;
    let env = stack_env(&harness);
    let spool = harness.spool.as_ref().unwrap();
    let good = json!({"receivedAt": "2025-01-15T10:30:01.000Z",
        "body": change("c-dead", "wf_1", "2025-01-15T10:30:00Z", json!([{"key": "price", "value": 1}]))});
    let bad = json!({"receivedAt": "2025-01-15T10:30:01.000Z", "body": "{\"eventType\": \"workflow_failed\"}"});
    // Its body expired from the bucket: a redrive would make the replay take it as done.
    let expired = json!({"receivedAt": "2025-01-15T10:30:01.000Z", "bodyObject": "spool/expired"});
    for body in [&good, &bad, &expired] {
        harness
            .sqs
            .send_message()
            .queue_url(&spool.dead_letter_url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    let listed = kadoa(&["dlq", "list", "-o", "json"], &env).await;
    assert_eq!(listed.status.code(), Some(1), "dead letters need attention");
    let rows = json_out(&listed);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    let refused = rows.iter().find(|r| r["why"].as_str().unwrap().starts_with("refused")).unwrap();
    assert!(refused["why"].as_str().unwrap().contains("timestamp"), "{refused}");
    let replayable = rows.iter().find(|r| r["eventType"] == "workflow_data_change").unwrap();
    assert_eq!(replayable["workflowId"], "wf_1");
    assert_eq!(harness.spool_depths().await, (0, 3), "listing takes nothing");

    let id = replayable["id"].as_str().unwrap();
    let one = kadoa(&["dlq", "redrive", "--id", id], &env).await;
    assert_eq!(one.status.code(), Some(0), "{}", stdout(&one));
    assert_eq!(harness.spool_depths().await, (1, 2));
    let rest = kadoa(&["dlq", "redrive", "-o", "json"], &env).await;
    assert_eq!(rest.status.code(), Some(1), "one could not be moved");
    assert_eq!(json_out(&rest)["moved"], 1);
    assert_eq!(json_out(&rest)["bodyExpired"].as_array().unwrap().len(), 1);
    let again = kadoa(&["dlq", "redrive"], &env).await;
    assert!(stdout(&again).contains("no dead letters to move"), "{}", stdout(&again));
    assert_eq!(harness.spool_depths().await, (2, 1), "the expired one stays, the rest moved once");
    assert_eq!(harness.replay_all().await, 1, "the refused one dead-letters again");
    assert_eq!(harness.items_of("change").await.len(), 1, "the redriven change is stored");
}

/// What a scraped page can carry to a terminal: OSC 52 (writes the clipboard), OSC 0 (the
/// window's title), OSC 8 (a link), clear screen, a colour, a bare CR, backspace, BEL, the
/// 8-bit CSI and a bidi override.
const HOSTILE: &str = "\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}]0;pwned\u{7}\u{1b}]8;;https://evil.example\u{1b}\\link\u{1b}]8;;\u{1b}\\\u{1b}[2J\u{1b}[31mred\rover\u{8}\u{7}\u{9b}31m\u{202e}";

/// Asserts nothing in `output` acts on a terminal, and `HOSTILE` is shown escaped.
#[track_caller]
fn assert_shown(output: &Output, what: &str) {
    for (stream, bytes) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        let acting: Vec<char> =
            text.chars().filter(|c| (c.is_control() && *c != '\n') || ('\u{202a}'..='\u{202e}').contains(c)).collect();
        assert!(acting.is_empty(), "{what}: {stream} carries {acting:?}: {text}");
    }
    let all = format!("{}{}", stdout(output), String::from_utf8_lossy(&output.stderr));
    assert!(all.contains("\\x1b]52;c;ZXZpbA==\\x07\\x1b]0;pwned"), "{what}: shown escaped: {all}");
    assert!(all.contains("\\x1b[2J\\x1b[31mred\\x0dover\\x08\\x07\\u{9b}31m\\u{202e}"), "{what}: {all}");
}

#[tokio::test]
async fn what_a_page_scraped_is_shown_never_executed() {
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    let workflow = format!("wf{HOSTILE}");
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z",
        "data": {"id": format!("c{HOSTILE}"), "workflowId": workflow, "createdAt": "2025-01-15T10:00:00Z",
                 "url": format!("https://shop.example/{HOSTILE}"), "metadata": {"workflowName": HOSTILE},
                 "differences": [{"type": "changed", "fields": [{"key": HOSTILE, "value": HOSTILE, "previousValue": 1}]}]}});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    let failure = json!({"eventType": "workflow_failed", "timestamp": "2025-01-15T10:05:00Z",
        "data": {"workflowId": workflow, "workflowName": HOSTILE, "reason": HOSTILE}});
    harness.deliver(&failure.to_string()).await;

    let listed = kadoa(&["changes", "list", "--since", "2025-01-15"], &env).await;
    assert_eq!(listed.status.code(), Some(0));
    assert_shown(&listed, "changes list");
    let shown = kadoa(&["changes", "show", &format!("c{HOSTILE}"), "--workflow", &workflow], &env).await;
    assert_eq!(shown.status.code(), Some(0), "{}", stdout(&shown));
    assert_shown(&shown, "changes show");
    let unknown = kadoa(&["changes", "show", HOSTILE, "--workflow", &workflow], &env).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&unknown.stderr).contains('\u{1b}'), "{unknown:?}");
    let events = kadoa(&["events", "--since", "2025-01-15"], &env).await;
    assert_eq!(events.status.code(), Some(0));
    assert_shown(&events, "events");
    let status = kadoa(&["status"], &env).await;
    assert_eq!(status.status.code(), Some(1), "the workflow is failing");
    assert_shown(&status, "status");
    assert!(stdout(&status).contains("Needs attention: workflow wf\\x1b]52;c;"), "{}", stdout(&status));

    // Machine output stays exact: JSON escapes in its own way.
    let json = json_out(
        &kadoa(&["changes", "show", &format!("c{HOSTILE}"), "--workflow", &workflow, "-o", "json"], &env).await,
    );
    assert_eq!(json["workflowName"], HOSTILE);
    assert_eq!(json["differences"][0]["fields"][0]["value"], HOSTILE);
}

#[tokio::test]
async fn dead_letters_and_kadoas_ids_are_shown_never_executed() {
    let harness = Harness::builder().spool().secrets_manager(SECRET.to_owned()).build().await;
    let mut env = stack_env(&harness);
    let spool = harness.spool.as_ref().unwrap();
    let letter = json!({"receivedAt": "2025-01-15T10:30:01.000Z", "headerEvent": HOSTILE,
        "body": json!({"eventType": "workflow_failed", "data": {"workflowId": HOSTILE}}).to_string()});
    harness.sqs.send_message().queue_url(&spool.dead_letter_url).message_body(letter.to_string()).send().await.unwrap();
    let listed = kadoa(&["dlq", "list"], &env).await;
    assert_eq!(listed.status.code(), Some(1), "a dead letter needs attention");
    assert_shown(&listed, "dlq list");

    let fake = FakeKadoa::start(KEY).await;
    let url = "https://abc.lambda-url.us-east-1.on.aws/";
    let channel = format!("ch{HOSTILE}");
    fake.add_channel(json!({"id": channel, "name": "AWS", "channelType": "WEBHOOK",
        "config": {"webhookUrl": url, "httpMethod": "POST", "auth": {"type": "bearer", "token": SECRET}}}));
    // Connected already: every subscription sends to that channel, so nothing is sent.
    for event_type in kadoa_webhook::cli::SUBSCRIBED {
        fake.add_settings(None, event_type, true, &[channel.as_str()]);
    }
    env.push(("KADOA_API_URL", fake.url.clone()));
    env.push(("WEBHOOK_URL", url.to_owned()));
    let connected = kadoa(&["connect", "--api-key", KEY], &env).await;
    assert_eq!(connected.status.code(), Some(0), "{connected:?}");
    assert_shown(&connected, "connect");
    assert!(stdout(&connected).contains("already points at"), "{}", stdout(&connected));
}

/// The `value` column of an export's CSV, row by row.
fn csv_values(output: &Output) -> Vec<String> {
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    reader.records().map(|record| record.unwrap()[6].to_owned()).collect()
}

#[tokio::test]
async fn an_export_to_csv_runs_no_formula_unless_asked_for_exact_text() {
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    let values = [
        json!("=HYPERLINK(\"https://evil.example\",\"click\")"),
        json!("+cmd|' /C calc'!A0"),
        json!("@SUM(A1:A9)"),
        json!("-2+3"),
        json!("\t=1+1"),
        json!("\r=1+1"),
        json!("-12.5"),
        json!(-12.5),
        json!("plain"),
    ];
    let fields: Vec<Value> =
        values.iter().enumerate().map(|(i, v)| json!({"key": format!("k{i}"), "value": v})).collect();
    harness.deliver(&change("c1", "wf_1", "2025-01-15T10:00:00Z", json!(fields))).await;

    let safe = kadoa(&["export", "-o", "csv"], &env).await;
    assert_eq!(safe.status.code(), Some(0), "{safe:?}");
    assert_eq!(
        csv_values(&safe),
        [
            "'=HYPERLINK(\"https://evil.example\",\"click\")",
            "'+cmd|' /C calc'!A0",
            "'@SUM(A1:A9)",
            "'-2+3",
            "'\t=1+1",
            "'\\x0d=1+1",
            "-12.5",
            "-12.5",
            "plain"
        ]
    );
    let shown = kadoa(&["changes", "show", "c1", "--since", "2025-01-01", "-o", "csv"], &env).await;
    assert_eq!(csv_values(&shown), csv_values(&safe), "changes show -o csv as export");

    let exact = kadoa(&["export", "-o", "csv", "--csv-exact"], &env).await;
    assert_eq!(exact.status.code(), Some(0));
    let expected: Vec<String> = values.iter().map(|v| v.as_str().map_or(v.to_string(), str::to_owned)).collect();
    assert_eq!(csv_values(&exact), expected, "exactly as stored");
    assert_eq!(kadoa(&["export", "--csv-exact"], &env).await.status.code(), Some(1), "CSV only");
}

#[tokio::test]
async fn a_change_missing_a_part_says_so_and_exits_1() {
    use crate::support::{n, s};
    let harness = Harness::new().await;
    let env = stack_env(&harness);
    let text = "x".repeat(300);
    let differences: Vec<Value> =
        (0..3000).map(|i| json!({"type": "added", "fields": [{"key": format!("k{i}"), "value": text}]})).collect();
    let body = json!({"eventType": "workflow_data_change", "timestamp": "2025-01-15T10:00:00Z",
        "data": {"id": "big", "workflowId": "wf_1", "differences": differences}});
    assert_eq!(harness.deliver(&body.to_string()).await.1["status"], "stored");
    let parts = harness.items_of("changePart").await;
    assert_eq!(parts.len(), 3);
    let whole = kadoa(&["changes", "show", "big", "--since", "2025-01-01", "-o", "json"], &env).await;
    assert_eq!(whole.status.code(), Some(0));
    assert!(json_out(&whole).get("incomplete").is_none(), "whole: nothing said");

    // As TTL or a person may: one part gone.
    let lost = parts.iter().find(|part| n(part, "part") == 1).unwrap();
    let in_lost_part = lost["differences"].as_l().unwrap().len();
    harness
        .dynamodb
        .delete_item()
        .table_name(&harness.table)
        .key("pk", lost["pk"].clone())
        .key("sk", lost["sk"].clone())
        .send()
        .await
        .unwrap();
    let warning = format!("change big of workflow wf_1 is incomplete: part 1 of its 3 parts (numbered from 0) missing, {in_lost_part} of its 3000 differences not shown");
    assert!(s(lost, "sk").ends_with("#0001"));

    let shown = kadoa(&["changes", "show", "big", "--since", "2025-01-01"], &env).await;
    assert_eq!(shown.status.code(), Some(1), "{}", stdout(&shown));
    assert!(String::from_utf8_lossy(&shown.stderr).contains(&warning), "{shown:?}");
    let json = kadoa(&["changes", "show", "big", "--workflow", "wf_1", "-o", "json"], &env).await;
    assert_eq!(json.status.code(), Some(1));
    let change = json_out(&json);
    assert_eq!(change["incomplete"], json!({"partCount": 3, "missingParts": [1], "missingDifferences": in_lost_part}));
    assert_eq!(change["differences"].as_array().unwrap().len(), 3000 - in_lost_part);

    let csv = kadoa(&["export", "-o", "csv"], &env).await;
    assert_eq!(csv.status.code(), Some(1));
    assert_eq!(stdout(&csv).lines().count(), 1 + 3000 - in_lost_part, "what is there is exported");
    assert!(String::from_utf8_lossy(&csv.stderr).contains(&warning), "{csv:?}");
    let jsonl = kadoa(&["export"], &env).await;
    assert_eq!(jsonl.status.code(), Some(1));
    assert_eq!(serde_json::from_slice::<Value>(&jsonl.stdout).unwrap()["incomplete"]["missingParts"], json!([1]));
}

/// A `.local/dev.env` planted in the working directory (a cloned repository, a shared
/// folder) names a table, a foreign AWS endpoint and its own Kadoa API: the operator's
/// key never reaches that API, and no AWS request goes to that endpoint.
#[tokio::test]
async fn a_dev_env_in_the_working_directory_is_not_trusted() {
    let harness = Harness::new().await;
    let fake = FakeKadoa::start(KEY).await;
    let planted = std::env::temp_dir().join(format!("kadoa-planted-{}", std::process::id()));
    std::fs::create_dir_all(planted.join(".local")).unwrap();
    let file = [
        format!("TABLE_NAME={}", harness.table),
        format!("ALERT_TOPIC_ARN={}", harness.topic_arn),
        "WEBHOOK_URL=https://attacker.example/hook".to_owned(),
        "AWS_ENDPOINT_URL=http://192.0.2.1:9".to_owned(),
        format!("KADOA_API_URL={}", fake.url),
    ];
    std::fs::write(planted.join(".local/dev.env"), file.join("\n")).unwrap();
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "operator-id"),
        ("AWS_SECRET_ACCESS_KEY", "operator-secret"),
        ("KADOA_API_KEY", KEY),
        ("MY_KADOA_KEY", KEY),
    ];
    let run = |args: &'static [&'static str]| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kadoa"))
            .args(args)
            .env_clear()
            .envs(env)
            .current_dir(&planted)
            .output()
    };
    let reconcile = run(&["reconcile", "--from", "2025-01-15T00:00:00Z", "--to", "2025-01-16T00:00:00Z"]);
    let dry_run = run(&["connect", "--api-key-env", "MY_KADOA_KEY", "--dry-run"]);
    for output in [reconcile.await.unwrap(), dry_run.await.unwrap()] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "nothing to operate without a stack: {stderr}");
        assert!(stderr.contains("ignoring .local/dev.env in the working directory"), "{stderr}");
    }
    assert_eq!(fake.requests(), Vec::<String>::new(), "the planted KADOA_API_URL never got the key");
    assert!(harness.items().await.is_empty());
    std::fs::remove_dir_all(&planted).unwrap();
}

/// Five numbers as Kadoa may send them leave as JSON numbers with the digits they came
/// with, in `export -o json`, in `export` (JSONL) and in the outbox's bus entry (read from
/// the table's stream, as the drain reads it). An exponent is written as serde_json
/// writes one: `1e400` as `1e+400`, the same number.
#[tokio::test]
async fn numbers_leave_the_way_they_came_in() {
    let harness = Harness::builder().event_bus().build().await;
    let sent = [
        ("98765432109876543210", "98765432109876543210"),
        ("1.50", "1.50"),
        ("-0", "-0"),
        ("1e400", "1e+400"),
        ("19.99", "19.99"),
    ];
    let fields: Vec<Value> =
        (0..sent.len()).map(|i| json!({"key": format!("k{i}"), "value": format!("V{i}")})).collect();
    let mut body = change("c-numbers", "wf_1", "2025-01-15T10:00:00Z", json!(fields));
    for (i, (text, _)) in sent.iter().enumerate() {
        body = body.replace(&format!("\"V{i}\""), text);
    }
    assert_eq!(harness.deliver(&body).await.0, 200);
    let expected: Vec<String> =
        sent.iter().enumerate().map(|(i, (_, leaves))| format!(r#""key":"k{i}","value":{leaves}}}"#)).collect();

    let env = stack_env(&harness);
    for args in [&["export", "-o", "json"][..], &["export"][..]] {
        let text = stdout(&kadoa(args, &env).await);
        for field in &expected {
            assert!(text.contains(field.as_str()), "{args:?}: {field} in {text}");
        }
    }

    let stream = crate::support::resources::stream_event(&harness.outbox.as_ref().unwrap().stream_arn).await;
    let entries: Vec<_> = stream["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|record| {
            let raw = serde_json::value::RawValue::from_string(record.to_string()).unwrap();
            kadoa_webhook::outbox::read_record(&raw).entry.unwrap()
        })
        .collect();
    assert_eq!(entries.len(), 1);
    for field in &expected {
        assert!(entries[0].detail.contains(field.as_str()), "{field} in {}", entries[0].detail);
    }
}
