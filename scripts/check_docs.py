"""Fails when README.md or docs/*.md name something the code does not have (`make test` runs it).

What it holds the docs against, and where it reads the truth:
- template parameters: a backticked CamelCase word must be a parameter, resource, output,
  condition or metric name of template.yaml, a metric of src/metrics.rs, a name in the
  Rust code (comments left out), or in ALLOWED below; and every parameter is described in
  docs/configuration.md;
- environment variables: a backticked UPPER_SNAKE name (and one in a shell block) must be
  read somewhere in src/ or scripts/; every variable of `config::VARIABLES` is described in
  docs/configuration.md;
- metrics: the names in docs/metrics.md's metric table are exactly src/metrics.rs's;
- `make X`: X is a target of the Makefile; every target is mentioned somewhere;
- `kadoa <command> [<subcommand>] [--flag]`: the commands and long flags of clap's
  definitions in src/cli/mod.rs; every command is described in docs/kadoa-cli.md;
- relative links resolve to a file, and a `#anchor` to a heading of that file;
- README.md has at most 300 lines.
Prints every problem with its file and line, and exits 1; exits 0 when there is none."""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 300

# Names the docs may mention that no check above can find, each with the reason.
ALLOWED = {
    # AWS API operations, error codes, fields and metrics of AWS services.
    "PutItem": "DynamoDB API", "GetItem": "DynamoDB API", "UpdateItem": "DynamoDB API",
    "DeleteItem": "DynamoDB API", "BatchWriteItem": "DynamoDB API", "BatchGetItem": "DynamoDB API",
    "TransactWriteItems": "DynamoDB API", "UnprocessedItems": "DynamoDB API field",
    "ValidationException": "DynamoDB error code", "SendMessage": "SQS API", "PutObject": "S3 API",
    "GetObject": "S3 API", "DeleteObject": "S3 API", "PutEvents": "EventBridge API",
    "ReportBatchItemFailures": "Lambda event source setting", "IteratorAge": "Lambda metric",
    "DeletionPolicy": "CloudFormation attribute", "FilterPolicy": "SNS subscription attribute",
    "MessageStructure": "SNS Publish parameter", "ApproximateNumberOfMessages": "SQS attribute",
    "VmHWM": "Linux /proc status field", "EnvFilter": "tracing-subscriber type",
    "MetricService": "a type of the metrics_cloudwatch_embedded crate",
}
ALLOWED_VARIABLES = {
    "NEW_AND_OLD_IMAGES": "a DynamoDB stream view type, not a variable",
}


def read(path):
    return (ROOT / path).read_text(encoding="utf-8")


def documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def split_code(text):
    """(line number, inline code span) pairs, and (first line, language, body) of fenced blocks."""
    spans, blocks, fence, start, body = [], [], None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        marker = re.match(r"^\s*(```+|~~~+)\s*(\S*)", line)
        if fence is None and marker:
            fence, language, start, body = marker.group(1), marker.group(2), number, []
        elif fence is not None and line.strip().startswith(fence):
            blocks.append((start, language, "\n".join(body)))
            fence = None
        elif fence is not None:
            body.append(line)
        else:
            spans.extend((number, span) for span in re.findall(r"`([^`\n]+)`", line))
    return spans, blocks


class _Tags(yaml.SafeLoader):
    """CloudFormation's short tags (!Ref, !Sub, …) read as plain values."""


_Tags.add_multi_constructor("!", lambda loader, suffix, node: None)


def template_names():
    template = yaml.load(read("template.yaml"), Loader=_Tags)
    parameters = set(template.get("Parameters", {}))
    others = set(template.get("Resources", {})) | set(template.get("Outputs", {}))
    # The metric filters' metrics (and every other MetricName the template names).
    metric_names = set(re.findall(r"^\s*MetricName:\s*([A-Za-z]+)\s*$", read("template.yaml"), re.M))
    return parameters, others | set(template.get("Conditions", {})) | metric_names


def rust_code():
    """The Rust sources of src/ with `//` comments left out, so a name that survives only in
    a comment does not count as existing."""
    texts = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        lines = path.read_text(encoding="utf-8").splitlines()
        texts.extend(re.sub(r"(^|\s)//.*$", "", line) for line in lines)
    return "\n".join(texts)


def script_code():
    paths = [p for p in sorted((ROOT / "scripts").iterdir()) if p.is_file() and p.name != "check_docs.py"]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths) + read("Makefile")


def metric_names():
    return set(re.findall(r'(?:metric\(|name:\s*)"([A-Za-z]+)"', read("src/metrics.rs")))


def make_targets():
    return set(re.findall(r"^([a-z][\w-]*):", read("Makefile"), re.M))


def kebab(name):
    return re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower()


def cli_commands():
    """{command: {subcommand, …}} from clap's enums in src/cli/mod.rs."""
    code = read("src/cli/mod.rs")
    enums = {}
    for name, body in re.findall(r"pub enum (\w+) \{(.*?)\n\}", code, re.S):
        enums[name] = {kebab(v): arg for v, arg in re.findall(r"^\s{4}([A-Z]\w*)(?:\((?:Box<)?(\w+)>?\))?(?:,| \{)", body, re.M)}
    commands = {}
    for command, argument in enums.get("Command", {}).items():
        commands[command] = set(enums.get(argument or "", {}))
    commands["help"] = set()
    return commands


def cli_flags():
    """Every long flag clap derives from src/cli/mod.rs (fields whose `#[arg(…)]` says `long`,
    renamed by `long = "…"`), and clap's own."""
    flags = {"help", "version"}
    for attributes, field in re.findall(r"((?:\s*(?:///[^\n]*|#\[[^\]]*\]))+)\s*pub (\w+):", read("src/cli/mod.rs")):
        for arg in re.findall(r"#\[arg\(([^\]]*)\)\]", attributes):
            renamed = re.search(r'\blong\s*=\s*"([^"]+)"', arg)
            if renamed:
                flags.add(renamed.group(1))
            elif re.search(r"\blong\b", arg):
                flags.add(field.replace("_", "-"))
    return flags


def slug(heading):
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", text))


def anchors(path):
    seen, found = {}, set()
    spans_removed = re.sub(r"^(```|~~~).*?^\1", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    for heading in re.findall(r"^#{1,6}\s+(.*)$", spans_removed, re.M):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return found


class Checker:
    def __init__(self):
        self.problems = []
        self.parameters, self.template_others = template_names()
        self.rust = rust_code()
        self.code = self.rust + "\n" + script_code()
        self.metrics = metric_names()
        self.targets = make_targets()
        self.commands = cli_commands()
        self.flags = cli_flags()
        self.mentioned_targets = set()

    def problem(self, path, line, message):
        self.problems.append(f"{path.relative_to(ROOT)}:{line}: {message}")

    def check_document(self, path):
        text = path.read_text(encoding="utf-8")
        spans, blocks = split_code(text)
        for line, span in spans:
            self.check_camel(path, line, span)
            self.check_variables(path, line, span)
            self.check_commands(path, line, span)
        for start, language, body in blocks:
            for offset, code_line in enumerate(body.splitlines(), 1):
                self.check_commands(path, start + offset, code_line)
                if language in ("sh", "bash", "shell"):
                    self.check_variables(path, start + offset, code_line)
        self.check_links(path, text)

    def check_camel(self, path, line, span):
        word = span.split("=", 1)[0].strip()
        if not re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+", word):
            return
        known = (
            word in self.parameters
            or word in self.template_others
            or word in self.metrics
            or word in ALLOWED
            or re.search(rf"\b{word}\b", self.rust)
        )
        if not known:
            self.problem(
                path, line,
                f"`{word}` is not a template parameter, resource, output, condition or metric, nor a "
                "name in src/ (renamed or removed?); if it is right, add it to ALLOWED in scripts/check_docs.py",
            )

    def check_variables(self, path, line, text):
        for name in re.findall(r"(?<![\w./-])([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b", text):
            if name in ALLOWED_VARIABLES or re.search(rf"\b{name}\b", self.code):
                continue
            self.problem(path, line, f"environment variable {name} is read nowhere in src/ or scripts/")

    def check_commands(self, path, line, text):
        for target in re.findall(r"(?<![\w-])make\s+([a-z][\w-]*)", text):
            self.mentioned_targets.add(target)
            if target not in self.targets:
                self.problem(path, line, f"`make {target}`: the Makefile has no target {target}")
        text = re.sub(r"<[^>]*>", "PLACEHOLDER", text)
        for match in re.finditer(r"(?<![\w./-])kadoa(?=[ \t]+\S)(.*)", text):
            tokens = match.group(1).split()
            for flag in re.findall(r"(?<!\S)--([a-z][a-z-]*)", " ".join(tokens)):
                if flag not in self.flags:
                    self.problem(path, line, f"`kadoa … --{flag}`: the CLI has no such flag (src/cli/mod.rs)")
            words = self.command_words(tokens)
            if not words:
                continue
            command = words[0]
            if command not in self.commands:
                self.problem(path, line, f"`kadoa {command}`: the CLI has no such command (src/cli/mod.rs)")
            elif self.commands[command] and len(words) > 1 and words[1] not in self.commands[command]:
                self.problem(path, line, f"`kadoa {command} {words[1]}`: no such subcommand (src/cli/mod.rs)")

    @staticmethod
    def command_words(tokens):
        """The words of a `kadoa` command line before its arguments: global options and
        their values skipped; stops at the first token that is not a plain word."""
        words, skip_value = [], False
        for token in tokens:
            if skip_value:
                skip_value = False
                continue
            if token in ("--stack", "-o", "--output"):
                skip_value = True
                continue
            if token.startswith("-"):
                if words:
                    break
                continue
            if not re.fullmatch(r"[a-z][a-z-]*", token):
                break
            words.append(token)
            if len(words) == 2:
                break
        return words

    def check_links(self, path, text):
        # Code blocks blanked line for line, so the line numbers stay right.
        text = re.sub(r"^(```|~~~).*?^\1", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S | re.M)
        for number, line in enumerate(text.splitlines(), 1):
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):
                    continue
                file_part, _, anchor = target.partition("#")
                resolved = (path.parent / file_part).resolve() if file_part else path
                if not resolved.exists():
                    self.problem(path, number, f"link {target}: {file_part} does not exist")
                elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                    self.problem(path, number, f"link {target}: {resolved.name} has no heading #{anchor}")

    def check_reverse(self):
        configuration = ROOT / "docs" / "configuration.md"
        text = configuration.read_text(encoding="utf-8") if configuration.exists() else ""
        for parameter in sorted(self.parameters):
            if f"`{parameter}`" not in text:
                self.problem(configuration, 1, f"template parameter {parameter} is not described here")
        variables = re.search(r"pub const VARIABLES: &\[&str\] = &\[(.*?)\];", read("src/config.rs"), re.S)
        for variable in re.findall(r'"(\w+)"', variables.group(1) if variables else ""):
            if f"`{variable}`" not in text:
                self.problem(configuration, 1, f"environment variable {variable} (config::VARIABLES) is not described here")
        metrics_doc = ROOT / "docs" / "metrics.md"
        documented = self.metric_table(metrics_doc)
        for name in sorted(documented - self.metrics):
            self.problem(metrics_doc, 1, f"metric {name} is not emitted (src/metrics.rs)")
        for name in sorted(self.metrics - documented):
            self.problem(metrics_doc, 1, f"metric {name} (src/metrics.rs) is not in the metric table")
        cli_doc = ROOT / "docs" / "kadoa-cli.md"
        cli_text = cli_doc.read_text(encoding="utf-8") if cli_doc.exists() else ""
        for command in sorted(set(self.commands) - {"help"}):
            if f"kadoa {command}" not in cli_text:
                self.problem(cli_doc, 1, f"command `kadoa {command}` is not described here")
        for target in sorted(self.targets - self.mentioned_targets):
            self.problem(ROOT / "Makefile", 1, f"`make {target}` is not mentioned in README.md or docs/")
        readme_lines = len(read("README.md").splitlines())
        if readme_lines > README_MAX_LINES:
            self.problem(ROOT / "README.md", readme_lines,
                         f"README.md has {readme_lines} lines (at most {README_MAX_LINES}): move depth into docs/")

    @staticmethod
    def metric_table(path):
        """Backticked names in the first column of tables whose header starts with `metric`."""
        names, in_table = set(), False
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else None
            if cells is None:
                in_table = False
            elif cells[0].lower() == "metric":
                in_table = True
            elif in_table and not set(cells[0]) <= set("-: "):
                names.update(re.findall(r"`([A-Za-z]+)`", cells[0]))
        return names


def main():
    checker = Checker()
    for path in documents():
        checker.check_document(path)
    checker.check_reverse()
    for problem in checker.problems:
        print(problem)
    if checker.problems:
        print(f"\ndocs drift: {len(checker.problems)} problem(s) in README.md / docs/ (scripts/check_docs.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
