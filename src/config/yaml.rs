//! YAML text → a tree of [`Node`]s that each know where they came from.
//!
//! We read YAML through `saphyr-parser`'s event stream and build our own small tree instead of
//! deserializing straight into structs with serde. The reason is diagnostics: every value (keys
//! included) keeps its file, line and column, so *semantic* errors found later (a bad cron field, a
//! relative path, a job waiting on its own lock) can point at the exact place, and every error in a
//! file can be reported in one run rather than the first one only. Mappings keep their keys in order
//! as a list, so duplicate keys are caught here instead of silently overwritten.
//!
//! Scalars are typed by the YAML 1.2 core schema (`true`, `~`, `42`, `1.5`); quoted scalars are
//! always strings. Anchors and aliases are resolved by copying the anchored node, within a budget:
//! the nodes all aliases of a file copy may not exceed [`ALIAS_NODE_BUDGET`]. Nested aliases grow
//! exponentially (a 1 KB "billion laughs" file expands to 10⁹ nodes), and a parse that exhausts
//! memory takes `validate` or a SIGHUP reload down with it; past the budget the alias is a syntax
//! error at its own `file:line:col`. Copying the anchored tree is what costs, so the budget counts
//! copied nodes rather than alias events or nesting depth.
//!
//! This module knows nothing about backupmanager's keys; `decode` gives the tree its meaning.

use std::collections::HashMap;
use std::path::Path;

use saphyr_parser::{Event, Parser, ScalarStyle, ScanError};

use super::diag::{self, Diagnostic, Span};

/// How many nodes aliases may copy into one file's tree, all aliases together. A hand-written
/// config that reuses a block per job stays far below (1,000 jobs × a 20-node block = 20,000);
/// the tree it bounds is a few tens of megabytes at most.
pub const ALIAS_NODE_BUDGET: usize = 100_000;

/// A scalar after core-schema resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `text` is the scalar as written (unquoted content); `kind` its resolved type.
    Scalar {
        text: String,
        kind: Scalar,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    /// Characters between `span.col` and the first character of the scalar's content
    /// (an anchor, an opening quote). Lets callers point inside a string.
    pub content_offset: usize,
}

impl Node {
    /// What kind of YAML value this is, in words, for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Scalar { kind, .. } => match kind {
                Scalar::Null => "nothing (null)",
                Scalar::Bool(_) => "a boolean",
                Scalar::Int(_) => "an integer",
                Scalar::Float(_) => "a number",
                Scalar::Str => "a string",
            },
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                kind: Scalar::Null,
                ..
            }
        )
    }

    /// The text of a scalar (any type), `None` for a list or mapping.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// The span of the content of a scalar, `skip` characters in, `len` wide.
    pub fn inner_span(&self, skip: usize, len: usize) -> Span {
        self.span.shifted(self.content_offset + skip, len)
    }
}

/// Parses one YAML document. A syntax error is fatal for the file and comes back as the only
/// diagnostic; duplicate keys are reported as errors alongside a usable tree.
// One diagnostic per file parse, never on a hot path: boxing it would only burden every caller.
#[allow(clippy::result_large_err)]
pub fn parse(text: &str, file: &Path) -> Result<(Node, Vec<Diagnostic>), Diagnostic> {
    let mut builder = Builder {
        file,
        anchors: HashMap::new(),
        diags: Vec::new(),
        documents: 0,
        copied: 0,
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let bounds = Bounds::of(text);
    let shared: std::sync::Arc<Path> = std::sync::Arc::from(file);
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| syntax_error(text, file, &e, &bounds))?;
        let (line, col) = bounds.place(span.start.line(), span.start.col());
        let start = Span::in_file(&shared, line, col, span.len());
        let node = match event {
            Event::DocumentStart(_) => {
                builder.documents += 1;
                if builder.documents > 1 {
                    return Err(Diagnostic::error(
                        start,
                        "",
                        "a config file holds one YAML document, found a second one",
                    )
                    .with_help("remove the second `---` section or move it to its own file"));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let offset = content_offset(&start, span.end.col(), &text, style);
                let kind = match style {
                    ScalarStyle::Plain => resolve_plain(&text),
                    _ => Scalar::Str,
                };
                let n = Node {
                    value: Value::Scalar {
                        text: text.into_owned(),
                        kind,
                    },
                    span: Span {
                        len: text_len_hint(span.len(), offset),
                        ..start
                    },
                    content_offset: offset,
                };
                builder.anchor(anchor, &n);
                n
            }
            Event::Alias(id) => match builder.anchors.get(&id) {
                Some((n, size)) => {
                    builder.copied = builder.copied.saturating_add(*size);
                    if builder.copied > ALIAS_NODE_BUDGET {
                        return Err(Diagnostic::error(
                            start,
                            "",
                            format!(
                                "YAML aliases in this file expand to more than {ALIAS_NODE_BUDGET} nodes (this one copies {size})"
                            ),
                        )
                        .with_help(
                            "aliases nested inside aliases multiply (a \"billion laughs\" file); write the values out or use fewer levels of aliases",
                        ));
                    }
                    Node {
                        span: start,
                        content_offset: 0,
                        ..n.clone()
                    }
                }
                None => {
                    return Err(Diagnostic::error(start, "", "alias to an unknown anchor"));
                }
            },
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(start, anchor, Vec::new()));
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(start, anchor, Vec::new(), None));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop().expect("parser balances start and end events");
                let (n, anchor) = builder.finish(frame);
                builder.anchor(anchor, &n);
                n
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {
                continue;
            }
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => entries.push((key, node)),
            },
        }
    }
    let root = root.unwrap_or_else(|| Node {
        value: Value::Scalar {
            text: String::new(),
            kind: Scalar::Null,
        },
        span: Span::in_file(&shared, 1, 1, 0),
        content_offset: 0,
    });
    Ok((root, builder.diags))
}

enum Frame {
    Seq(Span, usize, Vec<Node>),
    Map(Span, usize, Vec<(Node, Node)>, Option<Node>),
}

struct Builder<'a> {
    file: &'a Path,
    /// Anchored nodes with their size in nodes (what an alias to them copies).
    anchors: HashMap<usize, (Node, usize)>,
    diags: Vec<Diagnostic>,
    documents: usize,
    /// Nodes copied by aliases so far (bounded by [`ALIAS_NODE_BUDGET`]).
    copied: usize,
}

impl Builder<'_> {
    fn anchor(&mut self, id: usize, node: &Node) {
        if id != 0 {
            self.anchors.insert(id, (node.clone(), node_count(node)));
        }
    }

    fn finish(&mut self, frame: Frame) -> (Node, usize) {
        let _ = self.file;
        match frame {
            Frame::Seq(span, anchor, items) => (
                Node {
                    value: Value::Seq(items),
                    span,
                    content_offset: 0,
                },
                anchor,
            ),
            Frame::Map(span, anchor, entries, _) => {
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (k, _) in &entries {
                    if let Value::Scalar { text, .. } = &k.value {
                        if let Some(first) = seen.insert(text.clone(), k.span.line) {
                            self.diags.push(
                                Diagnostic::error(
                                    k.span.clone(),
                                    "",
                                    format!("duplicate key `{text}` (first set on line {first})"),
                                )
                                .with_help(
                                    "a key may appear once in a mapping; remove one of them",
                                ),
                            );
                        }
                    }
                }
                (
                    Node {
                        value: Value::Map(entries),
                        span,
                        content_offset: 0,
                    },
                    anchor,
                )
            }
        }
    }
}

/// The number of nodes in a tree (a mapping entry counts its key and its value).
fn node_count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
    }
}

/// Where the content of a scalar starts relative to its span (skipping `&anchor ` and a quote).
fn content_offset(start: &Span, end_col: usize, text: &str, style: ScalarStyle) -> usize {
    let quote = usize::from(matches!(
        style,
        ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
    ));
    // Span width on one line minus the content (and quotes) is the anchor prefix, if any.
    let span_chars = end_col.saturating_sub(start.col - 1);
    let content = text.chars().count() + 2 * quote;
    let anchor = if matches!(
        style,
        ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
    ) && !text.contains('\n')
        && span_chars > content
    {
        span_chars - content
    } else {
        0
    };
    anchor + quote
}

fn text_len_hint(span_len: usize, offset: usize) -> usize {
    span_len.saturating_sub(offset).max(1)
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Scalar {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "true" | "True" | "TRUE" => return Scalar::Bool(true),
        "false" | "False" | "FALSE" => return Scalar::Bool(false),
        _ => {}
    }
    let int = if let Some(hex) = s.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(oct) = s.strip_prefix("0o") {
        i64::from_str_radix(oct, 8).ok()
    } else if s
        .bytes()
        .enumerate()
        .all(|(i, b)| b.is_ascii_digit() || (i == 0 && (b == b'-' || b == b'+')))
        && s.bytes().any(|b| b.is_ascii_digit())
    {
        s.parse().ok()
    } else {
        None
    };
    if let Some(i) = int {
        return Scalar::Int(i);
    }
    let floaty = s.bytes().any(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if floaty {
        if let Ok(f) = s.parse::<f64>() {
            return Scalar::Float(f);
        }
    }
    if matches!(
        s,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN"
    ) {
        return Scalar::Float(f64::NAN);
    }
    Scalar::Str
}

/// The extent of a file, to keep reported positions inside it.
struct Bounds {
    /// Lines as YAML counts them (see [`diag::lines`]).
    lines: usize,
    /// Just after the last character of the last line with content.
    end: (usize, usize),
}

impl Bounds {
    fn of(text: &str) -> Bounds {
        Bounds {
            lines: diag::lines(text).count(),
            end: diag::end_position(text.trim_end_matches(['\n', '\r'])),
        }
    }

    /// The 1-based line and column for the parser's 1-based line and 0-based column. At the end
    /// of the stream the parser reports the line after the last one (for a syntax error, an empty
    /// value); that becomes the end of the last line with content, a place that exists.
    fn place(&self, line: usize, col0: usize) -> (usize, usize) {
        if line > self.lines {
            self.end
        } else {
            (line.max(1), col0 + 1)
        }
    }
}

/// Turns a scanner error into a diagnostic, with a hint for the mistakes people actually make.
fn syntax_error(text: &str, file: &Path, e: &ScanError, bounds: &Bounds) -> Diagnostic {
    let m = e.marker();
    let (line_no, col) = bounds.place(m.line(), m.col());
    let span = Span::new(file, line_no, col, 1);
    let line = diag::lines(text).nth(line_no - 1).unwrap_or("");
    let at: String = line.chars().skip(col - 1).collect();
    let info = e.info();
    let d = Diagnostic::error(span, "", format!("YAML syntax error: {info}"));
    if at.starts_with('*') && (info.contains("anchor") || info.contains("alias")) {
        let value = at.trim_end();
        return d.with_help(format!(
            "a value starting with `*` reads as a YAML alias; quote the cron expression: '{value}'"
        ));
    }
    if at.starts_with('@') || at.starts_with('`') {
        let value = at.trim_end();
        return d.with_help(format!(
            "`{}` cannot start an unquoted YAML value; quote it: '{value}'",
            &at[..1]
        ));
    }
    if line.contains('\t') {
        return d.with_help("YAML does not allow tabs for indentation; use spaces");
    }
    if info.contains("mapping values are not allowed") {
        return d.with_help("a value containing `: ` must be quoted, or the indentation is off");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Node {
        parse(s, Path::new("t.yaml")).expect("parses").0
    }

    #[test]
    fn spans_are_one_based_and_point_at_content() {
        let n = p("a: 'x y'\nb:\n  - &anc 42\n  - *anc\n");
        let Value::Map(entries) = &n.value else {
            panic!()
        };
        let (k, v) = &entries[0];
        assert_eq!((k.span.line, k.span.col), (1, 1));
        assert_eq!((v.span.line, v.span.col, v.content_offset), (1, 4, 1));
        let Value::Seq(items) = &entries[1].1.value else {
            panic!()
        };
        assert_eq!(items[0].inner_span(0, 1).col, 10);
        assert!(matches!(
            items[1].value,
            Value::Scalar {
                kind: Scalar::Int(42),
                ..
            }
        ));
        assert_eq!(items[1].span.line, 4);
    }

    #[test]
    fn core_schema() {
        for (s, k) in [
            ("~", Scalar::Null),
            ("true", Scalar::Bool(true)),
            ("yes", Scalar::Str),
            ("22000", Scalar::Int(22000)),
            ("-3", Scalar::Int(-3)),
            ("1.5", Scalar::Float(1.5)),
            ("5m", Scalar::Str),
            ("0 2 * * *", Scalar::Str),
        ] {
            assert_eq!(resolve_plain(s), k, "{s}");
        }
    }

    #[test]
    fn duplicate_keys_are_reported() {
        let (_, diags) = parse("a: 1\nb: 2\na: 3\n", Path::new("t.yaml")).unwrap();
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].span.line, 3);
        assert!(diags[0]
            .message
            .contains("duplicate key `a` (first set on line 1)"));
    }

    #[test]
    fn unquoted_cron_gets_a_quoting_hint() {
        for src in [
            "cron_schedule: */15 * * * *\n",
            "cron_schedule: * * * * *\n",
        ] {
            let d = parse(src, Path::new("t.yaml")).unwrap_err();
            assert_eq!((d.span.line, d.span.col), (1, 16));
            assert!(
                d.help
                    .as_deref()
                    .unwrap()
                    .contains("quote the cron expression"),
                "{d:?}"
            );
        }
        let d = parse("cron_schedule: @daily\n", Path::new("t.yaml")).unwrap_err();
        assert!(d.help.unwrap().contains("'@daily'"));
    }

    #[test]
    fn an_alias_bomb_is_stopped_at_the_alias_that_exceeds_the_budget() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(src.len() < 1024);
        let d = parse(&src, Path::new("t.yaml")).unwrap_err();
        // a4's aliases copy 11,111 nodes each (a3's tree): the sixth crosses the budget.
        assert_eq!((d.span.line, d.span.col), (5, 45), "{d:?}");
        assert!(d.message.contains("more than 100000 nodes"), "{d:?}");
        // Reuse within the budget still works.
        let (n, _) = parse("a: &a {k: v}\nb: [*a, *a]\n", Path::new("t.yaml")).unwrap();
        assert_eq!(node_count(&n), 13);
    }

    #[test]
    fn second_document_is_rejected() {
        let d = parse("---\na: 1\n---\nb: 2\n", Path::new("t.yaml")).unwrap_err();
        assert_eq!(d.span.line, 3);
    }
}
