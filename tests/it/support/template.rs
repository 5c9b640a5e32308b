//! template.yaml, read through the project's own loader (scripts/template.py), so tests
//! build their tables exactly as the stack does and can check the template against the code.

use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

static TEMPLATE: OnceLock<Value> = OnceLock::new();

pub fn template() -> &'static Value {
    TEMPLATE.get_or_init(|| {
        let root = env!("CARGO_MANIFEST_DIR");
        let venv_python = format!("{root}/.venv/bin/python");
        let python = if std::path::Path::new(&venv_python).exists() { venv_python } else { "python3".to_owned() };
        let output = Command::new(&python)
            .arg(format!("{root}/scripts/template.py"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run `make test`, which installs it"));
        assert!(output.status.success(), "scripts/template.py failed: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("template as JSON")
    })
}

pub fn resource(name: &str) -> &'static Value {
    let resource = &template()["Resources"][name];
    assert!(resource.is_object(), "template.yaml has no resource {name}");
    resource
}
