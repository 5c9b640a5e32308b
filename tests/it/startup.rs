//! The binary itself: it refuses to start without its configuration (fail closed).

use std::process::Command;

fn start_with(env: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kadoa-webhook"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn refuses_to_start_without_a_secret() {
    let (ok, log) = start_with(&[("TABLE_NAME", "t"), ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t")]);
    assert!(!ok);
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["message"], "configuration is invalid; refusing to start");
    assert_eq!(line["error"], "WEBHOOK_SECRET or WEBHOOK_SECRET_ARN is required");
}

#[test]
fn refuses_to_start_without_a_table() {
    let (ok, log) = start_with(&[("WEBHOOK_SECRET", "s"), ("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:1:t")]);
    assert!(!ok);
    assert!(log.contains("TABLE_NAME is required"), "{log}");
    assert!(!log.contains("\"s\""), "the secret is never logged: {log}");
}

#[test]
fn the_deployed_binary_runs_the_function_its_handler_names() {
    let run = |env: &[(&str, &str)]| {
        let output = Command::new(env!("CARGO_BIN_EXE_kadoa-lambda"))
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("the binary runs");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    // The webhook's own configuration check: it is the webhook that starts.
    let (ok, log) = run(&[("_HANDLER", "webhook"), ("WEBHOOK_SECRET", "s"), ("ALERT_TOPIC_ARN", "arn:t")]);
    assert!(!ok && log.contains("TABLE_NAME is required"), "{log}");
    // The outbox's: it needs its bus.
    let (ok, log) = run(&[("_HANDLER", "outbox")]);
    assert!(!ok && log.contains("EVENT_BUS"), "{log}");
    // A Handler that names no function refuses to start, saying which ones exist.
    for handler in [None, Some("bootstrap")] {
        let env: Vec<(&str, &str)> = handler.map(|h| ("_HANDLER", h)).into_iter().collect();
        let (ok, log) = run(&env);
        assert!(!ok, "{log}");
        let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(line["message"], "configuration is invalid; refusing to start");
        assert_eq!(line["error"], "the function's Handler must be one of webhook, replay, reconcile, outbox");
    }
}
