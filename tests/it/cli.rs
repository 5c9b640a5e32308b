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
fn stack_env(harness: &Harness) -> Vec<(&'static str, String)> {
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
async fn kadoa(args: &[&str], env: &[(&'static str, String)]) -> Output {
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn json_out(output: &Output) -> Value {
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
    for command in ["status", "changes", "export", "events", "connect", "test", "secret", "dlq", "reconcile"] {
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
    let table = stdout(&kadoa(&["changes", "list"], &env).await);
    assert!(table.contains("c3") && table.contains("1 (+0 ~1 -0)"), "{table}");

    let shown = kadoa(&["changes", "show", "c1"], &env).await;
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
    let events = kadoa(&["events", "-o", "jsonl"], &env).await;
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

#[tokio::test]
async fn connect_creates_subscribes_tests_and_then_changes_nothing() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let mut env = stack_env(&harness);
    env.push(("KADOA_API_URL", fake.url.clone()));
    env.push(("WEBHOOK_URL", "https://abc.lambda-url.us-east-1.on.aws/".to_owned()));
    env.push(("MY_KADOA_KEY", KEY.to_owned()));

    let dry = kadoa(&["connect", "--api-key-env", "MY_KADOA_KEY", "--dry-run"], &env).await;
    assert_eq!(dry.status.code(), Some(0));
    let text = stdout(&dry);
    assert!(text.contains("would send: POST /v5/notifications/channels") && text.contains("****"), "{text}");
    assert!(!text.contains(SECRET), "the secret is never printed");
    assert!(fake.channels().is_empty() && fake.settings().is_empty() && fake.tests() == 0, "a dry run sends nothing");

    // Kadoa's test notification reaches the webhook as any delivery: the test plays Kadoa.
    let env_for_run = env.clone();
    let run = tokio::spawn(async move { kadoa(&["connect", "--api-key", KEY, "--wait", "30"], &env_for_run).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while fake.tests() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no test notification asked for");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = kadoa_webhook::timestamp::Timestamp::now().to_key_string();
    harness.deliver(&change("mock-change", "wf_test", &now, json!([{"key": "price", "value": 1}]))).await;
    let connected = run.await.unwrap();
    let text = stdout(&connected);
    assert_eq!(connected.status.code(), Some(0), "{text}");
    assert!(text.contains("created: https://abc.lambda-url.us-east-1.on.aws/"), "{text}");
    assert!(text.contains("stored as change mock-change"), "{text}");
    let channels = fake.channels();
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0]["config"]["auth"], json!({"type": "bearer", "token": SECRET}));
    assert_eq!(channels[0]["config"]["webhookUrl"], "https://abc.lambda-url.us-east-1.on.aws/");
    let subscribed: Vec<Value> = fake.settings().iter().map(|s| s["eventType"].clone()).collect();
    assert_eq!(subscribed.len(), 6);
    assert!(!subscribed.contains(&json!("workflow_finished")), "workflow_recovered would be suppressed");
    assert!(fake.settings().iter().all(|s| s["channelIds"] == json!(["ch_1"])));

    let again = kadoa(&["connect", "--api-key", KEY, "-o", "json"], &env).await;
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(json_out(&again)["changed"], false);
    assert_eq!((fake.channels().len(), fake.settings().len(), fake.tests()), (1, 6, 1), "a second run changes nothing");

    let wrong = kadoa(&["connect", "--api-key", "nope"], &env).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("Kadoa refused the API key (401)"));
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
async fn a_secret_rotation_adds_then_finishes_and_switches_kadoa() {
    let harness = Harness::builder().secrets_manager(SECRET.to_owned()).build().await;
    let fake = FakeKadoa::start(KEY).await;
    let url = "https://abc.lambda-url.us-east-1.on.aws/";
    fake.add_channel(json!({"id": "ch_7", "name": "AWS", "channelType": "WEBHOOK",
        "config": {"webhookUrl": url, "httpMethod": "POST", "auth": {"type": "bearer", "token": SECRET}}}));
    let mut env = stack_env(&harness);
    env.push(("KADOA_API_URL", fake.url.clone()));
    env.push(("WEBHOOK_URL", url.to_owned()));
    let secret = || async {
        let sm = aws_sdk_secretsmanager::Client::new(&crate::support::sdk_config(&moto().endpoint).await);
        let value = sm.get_secret_value().secret_id(harness.secret_arn.as_ref().unwrap()).send().await.unwrap();
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
    assert!(!stdout(&finished).contains(&lines[1]), "the secret is never printed");
    let nothing = kadoa(&["secret", "rotate", "--finish"], &env).await;
    assert!(stdout(&nothing).contains("nothing to finish"));
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

    let listed = kadoa(&["changes", "list"], &env).await;
    assert_eq!(listed.status.code(), Some(0));
    assert_shown(&listed, "changes list");
    let shown = kadoa(&["changes", "show", &format!("c{HOSTILE}"), "--workflow", &workflow], &env).await;
    assert_eq!(shown.status.code(), Some(0), "{}", stdout(&shown));
    assert_shown(&shown, "changes show");
    let unknown = kadoa(&["changes", "show", HOSTILE, "--workflow", &workflow], &env).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&unknown.stderr).contains('\u{1b}'), "{unknown:?}");
    let events = kadoa(&["events"], &env).await;
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
    fake.add_channel(json!({"id": format!("ch{HOSTILE}"), "name": "AWS", "channelType": "WEBHOOK",
        "config": {"webhookUrl": url, "httpMethod": "POST", "auth": {"type": "bearer", "token": SECRET}}}));
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
    let shown = kadoa(&["changes", "show", "c1", "-o", "csv"], &env).await;
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
    let whole = kadoa(&["changes", "show", "big", "-o", "json"], &env).await;
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

    let shown = kadoa(&["changes", "show", "big"], &env).await;
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
