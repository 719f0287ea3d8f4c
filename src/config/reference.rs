//! Generated references for the config, all from [`fields`](super::fields): the JSON Schema
//! (`backupmanager schema`), `docs/configuration.md`, and the `backupmanager.yaml(5)` man page.

use serde_json::{json, Map, Value};

use super::fields::{self, Field, Section, Ty};

/// JSON Schema (draft 2020-12) of the main config file. Editors use it through the
/// `# yaml-language-server: $schema=` line at the top of the packaged config.
pub fn json_schema() -> Value {
    let mut root = object_schema(&fields::TOP);
    let obj = root.as_object_mut().expect("object schema");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert(
        "$id".into(),
        json!("https://backupmanager.invalid/schema/backupmanager.json"),
    );
    obj.insert("title".into(), json!("backupmanager configuration"));
    root
}

fn object_schema(section: &Section) -> Value {
    let mut props = Map::new();
    for f in section.fields {
        props.insert(f.key.into(), field_schema(f));
    }
    let required: Vec<&str> = section
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.key)
        .collect();
    let mut o = json!({
        "type": "object",
        "description": section.doc,
        "properties": props,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        o["required"] = json!(required);
    }
    o
}

fn field_schema(f: &Field) -> Value {
    let mut v = ty_schema(f.ty);
    let mut desc = f.doc.to_string();
    if let Some(d) = f.default {
        desc.push_str(&format!(" Default: {d}."));
    }
    v["description"] = json!(desc);
    v
}

fn ty_schema(ty: Ty) -> Value {
    match ty {
        Ty::Str | Ty::Cron | Ty::TimeZone => json!({"type": "string", "minLength": 1}),
        Ty::AbsPath => json!({"type": "string", "pattern": "^/"}),
        Ty::Path => json!({"type": "string", "minLength": 1}),
        Ty::Port => json!({"type": "integer", "minimum": 1, "maximum": 65535}),
        Ty::Bool => json!({"type": "boolean"}),
        Ty::Duration => json!({"oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": "^\\s*([0-9]+\\s*([a-z]+)?\\s*)+$"}
        ]}),
        Ty::Int(lo, hi) => json!({"type": "integer", "minimum": lo, "maximum": hi}),
        Ty::Enum(words) => json!({"type": "string", "enum": words}),
        Ty::StrList => json!({"type": ["array", "null"], "items": {"type": "string"}}),
        Ty::StrMap => {
            json!({"type": ["object", "null"], "additionalProperties": {"type": "string"}})
        }
        Ty::List(section) => json!({"type": ["array", "null"], "items": object_schema(section)}),
        Ty::Map(section) => {
            let mut o = object_schema(section);
            o["type"] = json!(["object", "null"]);
            o
        }
        Ty::Count => json!({"oneOf": [
            {"type": "integer", "minimum": 1, "maximum": u32::MAX},
            {"const": "all"}
        ]}),
        Ty::CalendarSpan => json!({
            "type": "string",
            "pattern": "^\\s*([0-9]+\\s*(y|mo|w|d|h|m)\\s*)+$"
        }),
        Ty::NamedInts(lo, hi) => json!({
            "type": ["object", "null"],
            "additionalProperties": {"type": "integer", "minimum": lo, "maximum": hi}
        }),
    }
}

fn ty_words(ty: Ty) -> String {
    match ty {
        Ty::Str => "string".into(),
        Ty::AbsPath => "absolute path".into(),
        Ty::Path => "path".into(),
        Ty::Port => "port (1-65535)".into(),
        Ty::Bool => "true or false".into(),
        Ty::Duration => "duration (300, 90s, 5m, 1h 30m, 2d)".into(),
        Ty::Int(lo, hi) => format!("integer ({lo}-{hi})"),
        Ty::Cron => "cron expression (quoted)".into(),
        Ty::TimeZone => "IANA time zone".into(),
        Ty::Enum(words) => words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(" or "),
        Ty::StrList => "list of strings".into(),
        Ty::StrMap => "mapping of names to strings".into(),
        Ty::List(s) => format!("list of {} entries", s.name),
        Ty::Map(s) => format!("mapping (see {})", title(s.name)),
        Ty::Count => "count (integer >= 1) or `all`".into(),
        Ty::CalendarSpan => "calendar span (2d, 36h, 1y6mo; units y, mo, w, d, h, m)".into(),
        Ty::NamedInts(lo, hi) => format!("mapping of names to integers ({lo}-{hi})"),
    }
}

const EXAMPLE: &str = r#"cron_schedule: '30 2 * * *'
pid_file_dir: /run/backupmanager
jobs:
  - id: desktop_to_backup_a
    user: root
    host: backup-a.example.com
    lock_files:
      - type: local
        path: /run/backupmanager/desktop_to_backup_a
      - type: remote
        path: /run/backupmanager/desktop_to_backup_a
    blocks_on:
      - type: remote
        lock_file_path: /run/backupmanager/backup_a_to_backup_b
        wait_time: 5m
    syncs:
      - source: /home/
        dest: /srv/backup/desktop/home/
        opts: ["-a", "--delete", "--exclude '.cache'"]
"#;

/// `docs/configuration.md`.
pub fn markdown() -> String {
    let mut s = String::from(
        "# Configuration reference\n\n<!-- Generated by `backupmanager reference markdown` from src/config/fields.rs; do not edit. -->\n\n\
         backupmanager reads one YAML file (default `/etc/backupmanager/backupmanager.yaml`; `--config PATH` or \
         `BACKUPMANAGER_CONFIG` choose another) plus drop-in files. `backupmanager validate` checks it and reports \
         every problem as `FILE:LINE:COL`. `backupmanager schema` prints a JSON Schema for editors.\n\n```yaml\n",
    );
    s.push_str(EXAMPLE);
    s.push_str("```\n");
    for section in fields::sections().iter().copied().chain([&fields::DROPIN]) {
        s.push_str(&format!("\n## {}\n\n{}\n\n| key | type | required | default | description |\n|---|---|---|---|---|\n", title(section.name), section.doc));
        for f in section.fields {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                f.key,
                ty_words(f.ty),
                if f.required { "yes" } else { "no" },
                f.default
                    .map(|d| format!("`{d}`"))
                    .unwrap_or_else(|| "—".into()),
                f.doc.replace('|', "\\|")
            ));
        }
    }
    s
}

/// `backupmanager.yaml(5)` in roff.
pub fn man_page(version: &str) -> String {
    let mut s = format!(
        ".TH BACKUPMANAGER.YAML 5 \"\" \"backupmanager {version}\" \"File Formats\"\n.SH NAME\nbackupmanager.yaml \\- configuration of backupmanager\n.SH SYNOPSIS\n/etc/backupmanager/backupmanager.yaml, /etc/backupmanager/jobs.d/*.yaml\n.SH DESCRIPTION\n"
    );
    s.push_str(&roff_escape("backupmanager reads one YAML file plus drop-in files. Check it with `backupmanager validate`, which reports every problem as FILE:LINE:COL. Apply changes with `systemctl reload backupmanager`."));
    s.push_str("\n.SH EXAMPLE\n.nf\n");
    s.push_str(&roff_escape(EXAMPLE));
    s.push_str(".fi\n");
    for section in fields::sections().iter().copied().chain([&fields::DROPIN]) {
        s.push_str(&format!(
            ".SH {}\n{}\n",
            roff_escape(&title(section.name).to_uppercase()),
            roff_escape(section.doc)
        ));
        for f in section.fields {
            let mut head = format!("{} ({}", f.key, ty_words(f.ty));
            if f.required {
                head.push_str(", required");
            }
            if let Some(d) = f.default {
                head.push_str(&format!(", default {d}"));
            }
            head.push(')');
            s.push_str(&format!(
                ".TP\n.B {}\n{}\n",
                roff_escape(&head),
                roff_escape(f.doc)
            ));
        }
    }
    s.push_str(".SH SEE ALSO\n.BR backupmanager (1)\n");
    s
}

fn title(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\e")
        .replace('`', "")
        .lines()
        .map(|l| {
            if l.starts_with(['.', '\'']) {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_read_by_the_decoder() {
        let decoder = [
            include_str!("decode/mod.rs"),
            include_str!("decode/job.rs"),
            include_str!("decode/entries.rs"),
            include_str!("decode/direction.rs"),
            include_str!("decode/coord.rs"),
            include_str!("retention.rs"),
            include_str!("http.rs"),
            include_str!("archive.rs"),
            include_str!("hooks.rs"),
            include_str!("dumps.rs"),
            include_str!("retry.rs"),
            include_str!("notify.rs"),
        ]
        .concat();
        for section in fields::sections().iter().copied().chain([&fields::DROPIN]) {
            for f in section.fields {
                assert!(
                    decoder.contains(&format!("get(\"{}\")", f.key))
                        || decoder.contains(&format!("required(self, \"{}\")", f.key)),
                    "{}.{} is documented but never read by decode.rs",
                    section.name,
                    f.key
                );
            }
        }
    }

    #[test]
    fn schema_forbids_unknown_keys_everywhere() {
        let s = json_schema().to_string();
        // Nine sections (top, job, lock, blocker, sync, retention, http, archive, etcd), plus `hooks` and its hook entry inlined once per phase (4), `dumps`,
        // and `notify` with its four services, at the top level and in a job (2 x 5).
        assert_eq!(s.matches("\"additionalProperties\":false").count(), 25);
        assert!(s.contains("\"required\":[\"id\",\"syncs\"]"));
    }
}
