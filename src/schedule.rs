//! TEMPORARY SHIM (replaced by the real evaluator from branch `schedule`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule(String);
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    pub field: Option<&'static str>,
    pub offset: usize,
    pub message: String,
}
impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
impl Schedule {
    pub fn parse(e: &str) -> Result<Schedule, CronError> {
        let t = e.trim();
        if t.starts_with('@') || t.split_whitespace().count() == 5 {
            Ok(Schedule(t.into()))
        } else {
            Err(CronError {
                field: None,
                offset: 0,
                message: "expected 5 fields".into(),
            })
        }
    }
    pub fn expr(&self) -> &str {
        &self.0
    }
    pub fn is_reboot(&self) -> bool {
        self.0 == "@reboot"
    }
    pub fn next_after(
        &self,
        _a: jiff::Timestamp,
        _tz: &jiff::tz::TimeZone,
    ) -> Option<jiff::Timestamp> {
        None
    }
    pub fn upcoming(
        &self,
        _a: jiff::Timestamp,
        _tz: &jiff::tz::TimeZone,
        _n: usize,
    ) -> Vec<jiff::Timestamp> {
        vec![]
    }
}
