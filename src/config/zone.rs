//! The system's time zone, found without walking the whole zoneinfo tree.
//!
//! `jiff::tz::TimeZone::system()` reads the `/etc/localtime` symlink's target name and looks
//! that name up in its zoneinfo database, whose first lookup lists every file under
//! `/usr/share/zoneinfo` (about 1,800 names; measured at ~1 ms of CPU, a quarter of what
//! `backupmanager validate` spends, paid by every command and every `run-job`). In the common
//! case (no `TZ`, `/etc/localtime` a symlink to `…/zoneinfo/<Area>/<City>`) [`system`] reads
//! that one TZif file under the name its path gives, which is what jiff would have loaded;
//! anything else (a `TZ` or `ZONEINFO` variable, a copied file, `posix/` or `right/` trees, an unreadable
//! file) goes to jiff's own logic unchanged.
//!
//! Must not: disagree with jiff's answer about the zone (the unit test compares them here).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;

/// How long an answer is reused (jiff caches its own for a while too): a long-running daemon
/// notices a changed `/etc/localtime` within this time.
const TTL: Duration = Duration::from_secs(60);

/// The system's time zone (as `TimeZone::system()`).
pub fn system() -> TimeZone {
    static CACHE: Mutex<Option<(Instant, TimeZone)>> = Mutex::new(None);
    let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, tz)) = &*c {
        if at.elapsed() < TTL {
            return tz.clone();
        }
    }
    let tz = fast().unwrap_or_else(TimeZone::system);
    *c = Some((Instant::now(), tz.clone()));
    tz
}

/// Now, in the system's time zone (as `jiff::Zoned::now()`).
pub fn now() -> jiff::Zoned {
    jiff::Timestamp::now().to_zoned(system())
}

fn fast() -> Option<TimeZone> {
    if std::env::var_os("TZ").is_some() || std::env::var_os("ZONEINFO").is_some() {
        return None;
    }
    let target = std::fs::read_link("/etc/localtime").ok()?;
    // A relative target is relative to /etc (joining an absolute one gives it unchanged).
    let path = Path::new("/etc").join(target);
    let name = zoneinfo_name(&path)?;
    let bytes = std::fs::read(&path).ok()?;
    TimeZone::tzif(&name, &bytes).ok()
}

/// `Europe/Berlin` for `/usr/share/zoneinfo/Europe/Berlin` (or `../usr/share/zoneinfo/...`):
/// the components after the last `zoneinfo`; `None` for the `posix`/`right` variants or
/// anything unusual.
fn zoneinfo_name(path: &Path) -> Option<String> {
    let parts: Vec<&str> = path.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    let at = parts.iter().rposition(|c| *c == "zoneinfo")?;
    let rest = &parts[at + 1..];
    let ok = |c: &&str| {
        !c.is_empty()
            && *c != "."
            && *c != ".."
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-+".contains(&b))
    };
    if rest.is_empty() || !rest.iter().all(ok) || matches!(rest[0], "posix" | "right") {
        return None;
    }
    Some(rest.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_path_after_zoneinfo() {
        let n = |p: &str| zoneinfo_name(Path::new(p));
        assert_eq!(
            n("/usr/share/zoneinfo/Europe/Berlin").as_deref(),
            Some("Europe/Berlin")
        );
        assert_eq!(
            n("/etc/../usr/share/zoneinfo/Etc/UTC").as_deref(),
            Some("Etc/UTC")
        );
        assert_eq!(
            n("/usr/share/zoneinfo/America/Argentina/Buenos_Aires").as_deref(),
            Some("America/Argentina/Buenos_Aires")
        );
        assert_eq!(
            n("/usr/share/zoneinfo/Etc/GMT+5").as_deref(),
            Some("Etc/GMT+5")
        );
        assert_eq!(n("/usr/share/zoneinfo/posix/Europe/Berlin"), None);
        assert_eq!(n("/usr/share/zoneinfo/right/UTC"), None);
        assert_eq!(n("/usr/share/zoneinfo"), None);
        assert_eq!(n("/etc/localtime.copy"), None);
    }

    /// On this machine, the same zone as jiff's own detection: same name, same offsets.
    #[test]
    fn agrees_with_jiff() {
        let ours = system();
        let jiffs = TimeZone::system();
        assert_eq!(ours.iana_name(), jiffs.iana_name());
        for secs in [
            0i64,
            1_700_000_000,
            1_790_000_000,
            1_800_000_000,
            2_000_000_000,
        ] {
            let t = jiff::Timestamp::from_second(secs).unwrap();
            assert_eq!(ours.to_offset(t), jiffs.to_offset(t), "at {t}");
        }
    }
}
