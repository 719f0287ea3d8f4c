//! Fuzzes the small string parsers of the config. The first byte chooses the parser, the rest
//! (as UTF-8) is its input:
//!   0 → `config::words::split` (rsync `opts` entries)
//!   1 → `config::duration::parse` (and `format` round-trip)
//!   2 → `schedule::Schedule::parse` (cron expressions; also `next_after`/`upcoming`)
#![no_main]

use backupmanager::config::{duration, words};
use backupmanager::schedule::Schedule;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => match words::split(s) {
            Ok(ws) => {
                for w in &ws {
                    let _ = words::is_delete_opt(w);
                    let _ = words::sets_rsh(w);
                }
                // Whitespace-free input is at most one word.
                if !s.chars().any(char::is_whitespace) {
                    assert!(ws.len() <= 1, "{s:?} → {ws:?}");
                }
            }
            // The decoder turns `offset` into a caret column inside the entry.
            Err(e) => assert!(e.offset < s.chars().count(), "{s:?}: {e:?}"),
        },
        1 => {
            if let Ok(d) = duration::parse(s) {
                // Whatever parses formats back to the same duration.
                let f = duration::format(d);
                assert_eq!(duration::parse(&f), Ok(d), "{s:?} → {f:?}");
            }
        }
        _ => match Schedule::parse(s) {
            Ok(sched) => {
                let _ = sched.is_reboot();
                // The expression it keeps parses again.
                assert!(Schedule::parse(sched.expr()).is_ok(), "{s:?}");
                let tz = jiff::tz::TimeZone::UTC;
                let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
                let _ = sched.next_after(t, &tz);
                let _ = sched.upcoming(t, &tz, 3);
            }
            Err(e) => {
                // decode.rs slices the trimmed text at `offset` to place the caret.
                let t = s.trim();
                assert!(
                    e.offset <= t.len() && t.is_char_boundary(e.offset),
                    "{s:?}: offset {} not a char boundary of the trimmed text",
                    e.offset
                );
                let _ = e.to_string();
            }
        },
    }
});
