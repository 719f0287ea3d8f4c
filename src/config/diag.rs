//! Diagnostics: what `validate` (and every config load) reports.
//!
//! A [`Diagnostic`] always carries a file, a 1-based line and column, the config path of the value
//! it is about (`jobs[nightly].blocks_on[0].wait_time`), a message that says what is wrong and, where
//! there is one, a `help` line that says what to do. Rendering follows rustc: a `file:line:col:`
//! header, the offending source line and a caret under the value.
//!
//! This module only formats; it never decides whether something is an error.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

/// How bad a diagnostic is. Errors make the config invalid; warnings never do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A place in a config file. `line` and `col` are 1-based; `col` counts characters, as editors do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Span {
    /// Shared by every span of a file: a config's thousands of nodes carry one allocation.
    #[serde(serialize_with = "serialize_path")]
    pub file: Arc<Path>,
    pub line: usize,
    pub col: usize,
    /// Width of the caret underline in characters (at least 1 when rendered).
    #[serde(skip)]
    pub len: usize,
}

fn serialize_path<S: serde::Serializer>(p: &Arc<Path>, s: S) -> Result<S::Ok, S::Error> {
    p.as_ref().serialize(s)
}

impl Span {
    pub fn new(file: &Path, line: usize, col: usize, len: usize) -> Span {
        Span::in_file(&Arc::from(file), line, col, len)
    }

    /// A span in a file whose path is already shared.
    pub fn in_file(file: &Arc<Path>, line: usize, col: usize, len: usize) -> Span {
        Span {
            file: Arc::clone(file),
            line,
            col,
            len,
        }
    }

    /// The same place, `chars` characters further along the line (for pointing inside a scalar).
    pub fn shifted(&self, chars: usize, len: usize) -> Span {
        Span {
            file: self.file.clone(),
            line: self.line,
            col: self.col + chars,
            len,
        }
    }
}

/// One finding about the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    #[serde(flatten)]
    pub span: Span,
    /// Config path of the value, e.g. `jobs[nightly].syncs[0].opts[2]`; empty for the whole file.
    pub path: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            span,
            path: path.into(),
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Span, path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, path, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The one-line header: `FILE:LINE:COL: error: PATH: MESSAGE`, control characters escaped.
    pub fn headline(&self) -> String {
        escape_controls(&self.raw_headline())
    }

    fn raw_headline(&self) -> String {
        let mut s = if self.span.line == 0 {
            format!("{}: {}: ", self.span.file.display(), self.severity.label())
        } else {
            format!(
                "{}:{}:{}: {}: ",
                self.span.file.display(),
                self.span.line,
                self.span.col,
                self.severity.label()
            )
        };
        if !self.path.is_empty() {
            let _ = write!(s, "{}: ", self.path);
        }
        s.push_str(&self.message);
        s
    }

    /// The full rustc-like rendering. `source` is the text of `span.file`, if it could be read.
    pub fn render(&self, source: Option<&str>) -> String {
        let mut out = self.headline();
        out.push('\n');
        if let Some(line) = source
            .filter(|_| self.span.line > 0)
            .and_then(|s| lines(s).nth(self.span.line.saturating_sub(1)))
        {
            let num = self.span.line.to_string();
            let pad = " ".repeat(num.len());
            // Control characters from the file are shown escaped, never sent to the terminal;
            // the caret counts the escaped width so it stays under the value.
            let chars: Vec<char> = line.chars().collect();
            let start = self.span.col.saturating_sub(1).min(chars.len());
            let end = (start + self.span.len.max(1)).min(chars.len());
            let caret_at: usize = chars[..start]
                .iter()
                .map(|&c| shown(c).chars().count())
                .sum();
            let width = chars[start..end]
                .iter()
                .map(|&c| shown(c).chars().count())
                .sum::<usize>()
                .max(self.span.len.max(1) - (end - start));
            let line: String = chars.iter().map(|&c| shown(c)).collect();
            let _ = writeln!(out, "{pad} |");
            let _ = writeln!(out, "{num} | {line}");
            let _ = writeln!(out, "{pad} | {}{}", " ".repeat(caret_at), "^".repeat(width));
        }
        if let Some(help) = &self.help {
            let _ = writeln!(out, "  = help: {}", escape_controls(help));
        }
        out
    }
}

/// A character as a diagnostic shows it: a tab as a space, other control characters (ESC, BEL,
/// backspace, bidi overrides are not controls but C0/C1 and DEL are) as `\u{1b}`, the rest as is.
fn shown(c: char) -> String {
    match c {
        '\t' => " ".into(),
        c if c.is_control() => c.escape_unicode().to_string(),
        c => c.into(),
    }
}

/// `text` with control characters (other than newlines) escaped, so a config file cannot drive
/// the terminal that shows its diagnostics.
pub fn escape_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_unicode().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The lines of `text` as YAML counts them: `\n`, `\r\n` and a lone `\r` each end a line
/// (`str::lines` misses the lone `\r`, so line numbers from the parser would point elsewhere).
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text).filter(|t| !t.is_empty());
    std::iter::from_fn(move || {
        let r = rest?;
        match r.find(['\n', '\r']) {
            None => {
                rest = None;
                Some(r)
            }
            Some(i) => {
                let brk = if r[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&r[i + brk..]).filter(|t| !t.is_empty());
                Some(&r[..i])
            }
        }
    })
}

/// 1-based line and column just after the last character of `text`, counting lines like [`lines`].
pub fn end_position(text: &str) -> (usize, usize) {
    let (mut line, mut col, mut prev_cr) = (1, 1, false);
    for c in text.chars() {
        match c {
            '\n' if prev_cr => {}
            '\n' | '\r' => (line, col) = (line + 1, 1),
            _ => col += 1,
        }
        prev_cr = c == '\r';
    }
    (line, col)
}

/// Sorts diagnostics by file, then position, errors before warnings at the same place.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.span.file, a.span.line, a.span.col, a.severity).cmp(&(
            &b.span.file,
            b.span.line,
            b.span.col,
            b.severity,
        ))
    });
}

/// Edit distance (optimal string alignment), for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest of `candidates` to `word`, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word_l = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word_l, c), *c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_not_strangers() {
        let keys = ["wait_time", "lock_file_path", "type", "host"];
        assert_eq!(suggest("wait_tme", &keys), Some("wait_time"));
        assert_eq!(suggest("lockfile_path", &keys), Some("lock_file_path"));
        assert_eq!(suggest("Host", &keys), Some("host"));
        assert_eq!(suggest("tpye", &keys), Some("type"));
        assert_eq!(suggest("colour", &keys), None);
    }

    #[test]
    fn lines_break_like_yaml() {
        let l = |s| lines(s).collect::<Vec<_>>();
        assert_eq!(l(""), Vec::<&str>::new());
        assert_eq!(l("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
        assert_eq!(l("a\n\nb"), ["a", "", "b"]);
        assert_eq!(end_position("a\r\nbc"), (2, 3));
        assert_eq!(end_position("a\rb\n"), (3, 1));
    }

    #[test]
    fn control_characters_from_the_file_are_escaped() {
        let d = Diagnostic::error(
            Span::new(Path::new("c.yaml"), 1, 10, 3),
            "a",
            "unknown key `\x1b[2J`",
        );
        // The caret is under the BEL, `:` and space (col 10, 3 wide), escaped widths counted.
        let text = d.render(Some("a: {\x1b]0;x\x07: 1, k\x08y: 2}\n"));
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert_eq!(
            text,
            "c.yaml:1:10: error: a: unknown key `\\u{1b}[2J`\n  |\n1 | a: {\\u{1b}]0;x\\u{7}: 1, k\\u{8}y: 2}\n  |               ^^^^^^^\n"
        );
    }

    #[test]
    fn render_points_at_the_column() {
        let d = Diagnostic::error(Span::new(Path::new("c.yaml"), 2, 7, 3), "a.b", "bad value")
            .with_help("use a good one");
        let text = d.render(Some("x: 1\nport: 700\n"));
        assert_eq!(
            text,
            "c.yaml:2:7: error: a.b: bad value\n  |\n2 | port: 700\n  |       ^^^\n  = help: use a good one\n"
        );
    }
}
