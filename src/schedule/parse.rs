//! Parsing of cron expressions into bit sets, following cronie's grammar (`src/entry.c`).
//!
//! The grammar, per field, is a comma-separated list of items, each one of:
//!
//! * `*`, optionally followed by `/step`;
//! * a single value (a number, or a three-letter name in the month and day-of-week fields);
//! * a range `a-b`, optionally followed by `/step`.
//!
//! What cronie rejects we reject, with a message that says what is wrong and what to write
//! instead; see the parent module's documentation for the few deliberate departures.

use super::{CronError, Fields, Kind};

/// What [`parse`] produces: the schedule kind and whether it is a fixed-time job.
pub(super) struct Parsed {
    pub(super) kind: Kind,
    pub(super) fixed: bool,
}

/// The static description of one of the five fields.
struct FieldSpec {
    name: &'static str,
    low: u32,
    high: u32,
    /// Names accepted in place of numbers, for `low`, `low + 1`, ...
    names: &'static [&'static str],
    /// Extra text appended to out-of-range messages.
    range_note: &'static str,
}

const MONTH_NAMES: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        low: 0,
        high: 59,
        names: &[],
        range_note: "",
    },
    FieldSpec {
        name: "hour",
        low: 0,
        high: 23,
        names: &[],
        range_note: "",
    },
    FieldSpec {
        name: "day-of-month",
        low: 1,
        high: 31,
        names: &[],
        range_note: "",
    },
    FieldSpec {
        name: "month",
        low: 1,
        high: 12,
        names: MONTH_NAMES,
        range_note: " (or jan..dec)",
    },
    FieldSpec {
        name: "day-of-week",
        low: 0,
        high: 7,
        names: DAY_NAMES,
        range_note: " (0 and 7 are Sunday)",
    },
];

const FIELD_LIST: &str = "minute hour day-of-month month day-of-week";
const KNOWN_MACROS: &str = "@yearly @annually @monthly @weekly @daily @midnight @hourly @reboot";

/// Parses a trimmed expression.
pub(super) fn parse(expr: &str) -> Result<Parsed, CronError> {
    let tokens = split_fields(expr);
    let Some(&(first, _)) = tokens.first() else {
        return Err(whole(format!(
            "empty expression: expected 5 fields ({FIELD_LIST}) or a macro such as @daily"
        )));
    };
    if first.starts_with('@') {
        return parse_macro(first, &tokens);
    }
    if tokens.len() != 5 {
        let mut message = format!("expected 5 fields ({FIELD_LIST}), found {}", tokens.len());
        if matches!(tokens.len(), 6 | 7) {
            message.push_str(": seconds and year fields are not supported");
        }
        // Point the caret at the first surplus field when there is one.
        let offset = tokens.get(5).map_or(0, |&(_, at)| at);
        return Err(CronError {
            field: None,
            offset,
            message,
        });
    }

    let mut sets = [0u64; 5];
    for (i, (&(text, at), spec)) in tokens.iter().zip(FIELDS.iter()).enumerate() {
        sets[i] = parse_field(text, at, spec)?;
    }
    // cronie: "make sundays equivalent".
    let weekdays = if sets[4] & (1 | 1 << 7) != 0 {
        (sets[4] | 1) & 0x7f
    } else {
        sets[4]
    };
    let star = |i: usize| tokens[i].0.starts_with('*');
    let fields = Fields {
        minutes: sets[0],
        hours: sets[1],
        days: sets[2],
        months: sets[3],
        weekdays,
        day_or: !star(2) && !star(4),
    };
    Ok(Parsed {
        kind: Kind::Cron(fields),
        fixed: !star(0) && !star(1),
    })
}

/// Splits on runs of spaces and tabs, keeping each token's byte offset.
fn split_fields(expr: &str) -> Vec<(&str, usize)> {
    let mut tokens = Vec::new();
    let mut start = None;
    for (i, b) in expr.bytes().enumerate() {
        let blank = b == b' ' || b == b'\t';
        match (blank, start) {
            (true, Some(s)) => {
                tokens.push((&expr[s..i], s));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        tokens.push((&expr[s..], s));
    }
    tokens
}

fn parse_macro(name: &str, tokens: &[(&str, usize)]) -> Result<Parsed, CronError> {
    // cronie compares macro names case-sensitively (strcmp), so `@DAILY` is unknown.
    let all = |minutes: u64, hours: u64, days: u64, months: u64, weekdays: u64| Fields {
        minutes,
        hours,
        days,
        months,
        weekdays,
        day_or: false,
    };
    let any_hour = (1u64 << 24) - 1;
    let any_day = ((1u64 << 32) - 1) & !1;
    let any_month = ((1u64 << 13) - 1) & !1;
    let any_weekday = (1u64 << 7) - 1;
    let (kind, fixed) = match name {
        "@reboot" => (Kind::Reboot, true),
        "@yearly" | "@annually" => (Kind::Cron(all(1, 1, 1 << 1, 1 << 1, any_weekday)), true),
        "@monthly" => (Kind::Cron(all(1, 1, 1 << 1, any_month, any_weekday)), true),
        "@weekly" => (Kind::Cron(all(1, 1, any_day, any_month, 1)), true),
        "@daily" | "@midnight" => (Kind::Cron(all(1, 1, any_day, any_month, any_weekday)), true),
        "@hourly" => (
            Kind::Cron(all(1, any_hour, any_day, any_month, any_weekday)),
            false,
        ),
        _ => {
            return Err(whole(format!(
                "unknown macro {name} (known: {KNOWN_MACROS})"
            )))
        }
    };
    if let Some(&(extra, at)) = tokens.get(1) {
        return Err(CronError {
            field: None,
            offset: at,
            message: format!("a macro stands alone, found `{extra}` after {name}"),
        });
    }
    Ok(Parsed { kind, fixed })
}

fn whole(message: String) -> CronError {
    CronError {
        field: None,
        offset: 0,
        message,
    }
}

/// Parses one field into a bit set (bit `v` set for each selected value `v`).
fn parse_field(text: &str, at: usize, spec: &FieldSpec) -> Result<u64, CronError> {
    let mut bits = 0u64;
    let mut item_start = 0;
    for item in text.split(',') {
        let item_at = at + item_start;
        item_start += item.len() + 1;
        bits |= parse_item(item, item_at, spec)?;
    }
    Ok(bits)
}

/// A cursor over one list item, reporting errors at absolute offsets.
struct Item<'a> {
    text: &'a str,
    pos: usize,
    at: usize,
    spec: &'a FieldSpec,
}

impl<'a> Item<'a> {
    fn err(&self, rel: usize, message: String) -> CronError {
        CronError {
            field: Some(self.spec.name),
            offset: self.at + rel,
            message,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    /// The maximal run of ASCII alphanumerics at the cursor (cronie's `get_number` token).
    fn atom(&mut self) -> (&'a str, usize) {
        let start = self.pos;
        let len = self.text[start..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        self.pos += len;
        (&self.text[start..start + len], start)
    }

    /// Error for a character that cannot appear where it does.
    fn unexpected(&self, after: &str) -> CronError {
        let c = self.peek().unwrap_or(' ');
        let message = match c {
            '?' | '#' => format!("`{c}` is not supported by cron (Quartz syntax)"),
            '~' => {
                "`~` (random value) is not supported: schedules here are deterministic".to_string()
            }
            _ => format!("unexpected `{c}` after `{after}`"),
        };
        self.err(self.pos, message)
    }

    /// Reads a value (number or name) and checks it against the field's range.
    fn value(&mut self) -> Result<u32, CronError> {
        let (atom, rel) = self.atom();
        if atom.is_empty() {
            return Err(match self.peek() {
                None => self.err(rel, format!("missing value{}", self.expected())),
                Some('?' | '#' | '~') => self.unexpected(""),
                Some(c) => self.err(rel, format!("expected a value, found `{c}`{}", self.hint())),
            });
        }
        if atom.bytes().all(|b| b.is_ascii_digit()) {
            let spec = self.spec;
            let out_of_range = || {
                self.err(
                    rel,
                    format!(
                        "value {atom} is out of range {}-{}{}",
                        spec.low, spec.high, spec.range_note
                    ),
                )
            };
            let n: u32 = atom.parse().map_err(|_| out_of_range())?;
            if n < spec.low || n > spec.high {
                return Err(out_of_range());
            }
            return Ok(n);
        }
        let lower = atom.to_ascii_lowercase();
        if let Some(i) = self.spec.names.iter().position(|&n| n == lower) {
            return Ok(self.spec.low + i as u32);
        }
        Err(self.err(rel, self.diagnose_atom(atom)))
    }

    /// Explains why `atom` (alphanumeric, not a number, not a name) is invalid.
    fn diagnose_atom(&self, atom: &str) -> String {
        let upper = atom.to_ascii_uppercase();
        let digits_then = |suffix: &str| {
            upper
                .strip_suffix(suffix)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        };
        if upper == "L" || upper == "LW" || digits_then("L") {
            return "`L` is not supported by cron (Quartz syntax)".to_string();
        }
        if digits_then("W") && upper.len() > 1 {
            return "`W` is not supported by cron (Quartz syntax)".to_string();
        }
        if upper == "H" {
            return "`H` is not supported by cron (Jenkins syntax)".to_string();
        }
        match self.spec.name {
            "month" => format!("unknown month name `{atom}` (use jan..dec or 1-12)"),
            "day-of-week" => {
                format!("unknown day name `{atom}` (use sun..sat or 0-7, 0 and 7 are Sunday)")
            }
            _ => format!("`{atom}` is not a number{}", self.expected()),
        }
    }

    fn expected(&self) -> String {
        format!(
            " ({} must be {}-{})",
            self.spec.name, self.spec.low, self.spec.high
        )
    }

    fn hint(&self) -> String {
        if self.peek() == Some('-') {
            " (negative numbers are not allowed)".to_string()
        } else {
            String::new()
        }
    }

    /// Reads the step after a `/` (plain digits only, as in cronie).
    fn step(&mut self) -> Result<u32, CronError> {
        let (atom, rel) = self.atom();
        if atom.is_empty() {
            return Err(match self.peek() {
                None => self.err(rel, "missing step after `/`".to_string()),
                Some(_) => self.unexpected("/"),
            });
        }
        if !atom.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err(rel, format!("step must be a number, found `{atom}`")));
        }
        // A huge step selects only the start; saturate instead of failing.
        let n = atom.parse::<u32>().unwrap_or(u32::MAX);
        if n == 0 {
            return Err(self.err(rel, "step must be at least 1".to_string()));
        }
        Ok(n)
    }

    fn at_end(&self) -> bool {
        self.pos == self.text.len()
    }
}

/// Parses one list item into a bit set.
fn parse_item(text: &str, at: usize, spec: &FieldSpec) -> Result<u64, CronError> {
    let mut it = Item {
        text,
        pos: 0,
        at,
        spec,
    };
    if text.is_empty() {
        return Err(it.err(
            0,
            "empty list item (two commas in a row, or a comma at the start or end)".to_string(),
        ));
    }
    let (low, high, step);
    if it.peek() == Some('*') {
        it.pos += 1;
        (low, high) = (spec.low, spec.high);
        step = match it.peek() {
            None => 1,
            Some('/') => {
                it.pos += 1;
                it.step()?
            }
            Some(_) => return Err(it.unexpected("*")),
        };
    } else {
        let start = it.value()?;
        match it.peek() {
            None => return Ok(1 << start),
            Some('-') => {}
            Some('/') => {
                // cronie's parser has no `a/n` form (its own man page example was fixed
                // for this in 2025); many other crons read it as `a-max/n`.
                return Err(it.err(
                    0,
                    format!(
                        "`{text}`: a step needs `*` or a range before it; write `{}-{}{}`",
                        &text[..it.pos],
                        spec.high,
                        &text[it.pos..]
                    ),
                ));
            }
            Some(_) => return Err(it.unexpected(&text[..it.pos])),
        }
        it.pos += 1;
        let mut end = it.value()?;
        let range_text = &text[..it.pos];
        step = match it.peek() {
            None => {
                // cronie 1.7 lets a range end on Sunday-as-0 (`fri-sun`, `5-0`) mean 7.
                if spec.name == "day-of-week" && start > end && end == 0 {
                    end = 7;
                }
                1
            }
            Some('/') => {
                it.pos += 1;
                it.step()?
            }
            Some(_) => return Err(it.unexpected(range_text)),
        };
        if start > end {
            return Err(it.err(
                0,
                format!(
                    "range {range_text} is reversed: the start must not be after the end \
                     (ranges do not wrap around)"
                ),
            ));
        }
        (low, high) = (start, end);
    }
    if !it.at_end() {
        return Err(it.unexpected(&text[..it.pos]));
    }
    let mut bits = 0u64;
    let mut v = low;
    while v <= high {
        bits |= 1 << v;
        v = match v.checked_add(step) {
            Some(n) => n,
            None => break,
        };
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::super::{CronError, Schedule};

    #[test]
    fn accepts() {
        for expr in [
            "* * * * *",
            "\t0  2\t* *  *  ",
            "*/15 * * * *",
            "0-59/15 0-23 1-31 1-12 0-7",
            "5,10-20/5,*/25 * * * *",
            "0 0 * * MON-FRI",
            "0 0 * Jan-mar,DEC *",
            "0 0 * * fri-sun",
            "0 0 * * 5-0",
            "0 0 * * 7",
            "00 02 01 01 00",
            "*/90 * * * *",
            "0 */99999999999 * * *",
            "@yearly",
            "@annually",
            "@monthly",
            "@weekly",
            "@daily",
            "@midnight",
            "@hourly",
            "@reboot",
            "  @daily  ",
        ] {
            if let Err(e) = Schedule::parse(expr) {
                panic!("{expr:?} rejected: {e}");
            }
        }
    }

    #[test]
    fn rejects() {
        // (expression, field, offset, message fragment)
        let cases: &[(&str, Option<&str>, usize, &str)] = &[
            ("", None, 0, "empty expression"),
            ("   ", None, 0, "empty expression"),
            ("* * * *", None, 0, "expected 5 fields (minute hour day-of-month month day-of-week), found 4"),
            (
                "0 * * * * *",
                None,
                10,
                "expected 5 fields (minute hour day-of-month month day-of-week), found 6: seconds and year fields are not supported",
            ),
            ("0 0 * * * * 2026", None, 10, "found 7: seconds and year"),
            ("1 2 3 4 5 6 7 8", None, 10, "found 8"),
            ("@fortnightly", None, 0, "unknown macro @fortnightly (known: @yearly @annually @monthly @weekly @daily @midnight @hourly @reboot)"),
            ("@DAILY", None, 0, "unknown macro @DAILY"),
            ("@", None, 0, "unknown macro @ "),
            ("@daily 0", None, 7, "a macro stands alone"),
            ("60 * * * *", Some("minute"), 0, "value 60 is out of range 0-59"),
            ("* 24 * * *", Some("hour"), 2, "value 24 is out of range 0-23"),
            ("* * 0 * *", Some("day-of-month"), 4, "value 0 is out of range 1-31"),
            ("* * 32 * *", Some("day-of-month"), 4, "value 32 is out of range 1-31"),
            ("* * * 13 *", Some("month"), 6, "value 13 is out of range 1-12"),
            ("* * * 0 *", Some("month"), 6, "value 0 is out of range 1-12"),
            ("* * * * 8", Some("day-of-week"), 8, "value 8 is out of range 0-7 (0 and 7 are Sunday)"),
            ("1,99999999999 * * * *", Some("minute"), 2, "value 99999999999 is out of range 0-59"),
            ("0-60 * * * *", Some("minute"), 2, "value 60 is out of range"),
            ("*/0 * * * *", Some("minute"), 2, "step must be at least 1"),
            ("1-5/0 * * * *", Some("minute"), 4, "step must be at least 1"),
            ("*/ * * * *", Some("minute"), 2, "missing step after `/`"),
            ("*/x * * * *", Some("minute"), 2, "step must be a number, found `x`"),
            ("* * * */feb *", Some("month"), 8, "step must be a number"),
            ("5-1 * * * *", Some("minute"), 0, "range 5-1 is reversed"),
            ("* 22-2 * * *", Some("hour"), 2, "range 22-2 is reversed"),
            ("* * * dec-jan *", Some("month"), 6, "range dec-jan is reversed"),
            ("* * * * sat-mon", Some("day-of-week"), 8, "range sat-mon is reversed"),
            ("* * * * fri-sun/2", Some("day-of-week"), 8, "range fri-sun is reversed"),
            ("5/10 * * * *", Some("minute"), 0, "`5/10`: a step needs `*` or a range before it; write `5-59/10`"),
            ("* * * * 1/2", Some("day-of-week"), 8, "write `1-7/2`"),
            ("1,,2 * * * *", Some("minute"), 2, "empty list item"),
            (",1 * * * *", Some("minute"), 0, "empty list item"),
            ("* * * * 1,", Some("day-of-week"), 10, "empty list item"),
            ("* * L * *", Some("day-of-month"), 4, "`L` is not supported by cron (Quartz syntax)"),
            ("* * * * 5L", Some("day-of-week"), 8, "`L` is not supported by cron (Quartz syntax)"),
            ("* * LW * *", Some("day-of-month"), 4, "`L` is not supported"),
            ("* * 15W * *", Some("day-of-month"), 4, "`W` is not supported by cron (Quartz syntax)"),
            ("* * * * 6#3", Some("day-of-week"), 9, "`#` is not supported by cron (Quartz syntax)"),
            ("* * ? * *", Some("day-of-month"), 4, "`?` is not supported by cron (Quartz syntax)"),
            ("* * * * ?", Some("day-of-week"), 8, "`?` is not supported"),
            ("H * * * *", Some("minute"), 0, "`H` is not supported by cron (Jenkins syntax)"),
            ("H/15 * * * *", Some("minute"), 0, "`H` is not supported"),
            ("0~30 * * * *", Some("minute"), 1, "`~` (random value) is not supported"),
            ("* * * * monday", Some("day-of-week"), 8, "unknown day name `monday`"),
            ("* * * january *", Some("month"), 6, "unknown month name `january`"),
            ("mon * * * *", Some("minute"), 0, "`mon` is not a number (minute must be 0-59)"),
            ("5x * * * *", Some("minute"), 0, "`5x` is not a number"),
            ("-5 * * * *", Some("minute"), 0, "negative numbers are not allowed"),
            ("*5 * * * *", Some("minute"), 1, "unexpected `5` after `*`"),
            ("*-5 * * * *", Some("minute"), 1, "unexpected `-` after `*`"),
            ("1-2-3 * * * *", Some("minute"), 3, "unexpected `-` after `1-2`"),
            ("1-5/2/3 * * * *", Some("minute"), 5, "unexpected `/` after `1-5/2`"),
            ("1- * * * *", Some("minute"), 2, "missing value"),
            ("1.5 * * * *", Some("minute"), 1, "unexpected `.` after `1`"),
            ("* * * * 1;2", Some("day-of-week"), 9, "unexpected `;` after `1`"),
            ("é * * * *", Some("minute"), 0, "expected a value, found `é`"),
        ];
        for &(expr, field, offset, fragment) in cases {
            let err: CronError = match Schedule::parse(expr) {
                Ok(s) => panic!("{expr:?} accepted: {s:?}"),
                Err(e) => e,
            };
            assert_eq!(err.field, field, "{expr:?}: {err}");
            assert!(
                err.message.contains(fragment),
                "{expr:?}: {:?} lacks {fragment:?}",
                err.message
            );
            assert_eq!(err.offset, offset, "{expr:?}: {err}");
            let first = err.message.chars().next().unwrap();
            assert!(
                !first.is_uppercase(),
                "{expr:?}: message starts upper-case: {err}"
            );
        }
    }

    #[test]
    fn offsets_are_relative_to_the_trimmed_expression() {
        let e = Schedule::parse("   0 0 * * 9").unwrap_err();
        assert_eq!((e.field, e.offset), (Some("day-of-week"), 8));
    }
}
