//! The sidecar's clock in business questions: `context.now` (a Cedar
//! `datetime` at Beijing's +08:00), `context.localTime` (the Beijing clock
//! time as a `duration` since midnight) and `context.workday` (the day by
//! the bureau's workday calendar, 调休 included), so a policy can say
//! "workdays 08:00–20:00" without trusting the caller's clock.
//!
//! Only business questions (`useFunction`) get them: no login or
//! maintenance rule depends on time today, and adding them there later is
//! as backward-compatible as here (the schema declares them optional). A
//! caller that sends any of them is refused, not overwritten: a caller who
//! believes its own clock counts should learn that it does not.
//!
//! `localTime` exists because Cedar's `datetime.toTime()` is the time of
//! day in UTC: "08:00 in Beijing" would otherwise be written
//! `context.now.offset(duration("8h")).toTime() >= duration("8h")`.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use cedar_policy::{Context, EntityUid};
use serde_json::{json, Value};

use crate::audit::time::{format_time, Offset};
use crate::decision::{DecisionError, Engine, Query, Stamped};
use crate::domain::Action;
use crate::policy::PolicySnapshot;
use crate::store::CalendarYearRecord;

/// The context attributes the sidecar sets, and no caller may.
pub const CLOCK_ATTRIBUTES: [&str; 3] = ["now", "localTime", "workday"];

const DAY_MS: i64 = 86_400_000;

/// The sidecar's clock at one instant, for the questions asked at it. Its
/// values are worked out for the first business question stamped with it
/// and shared by the rest, so the questions of a batch see one instant
/// and one calendar, even if a calendar feed lands while they are stamped.
pub struct Clock {
    now_ms: u64,
    values: OnceLock<Stamped>,
}

impl Clock {
    pub fn at(now_ms: u64) -> Self {
        Self {
            now_ms,
            values: OnceLock::new(),
        }
    }

    fn values(&self, engine: &Engine) -> Result<Stamped, DecisionError> {
        if let Some(values) = self.values.get() {
            return Ok(values.clone());
        }
        let values = values_at(engine, self.now_ms)?;
        Ok(self.values.get_or_init(|| values).clone())
    }
}

/// Adds the clock attributes the served schema declares to a business
/// question's context (others are left as they are); refuses a question
/// whose context already has one.
pub fn stamp(
    engine: &Engine,
    snap: &PolicySnapshot,
    query: &mut Query,
    clock: &Clock,
) -> Result<(), DecisionError> {
    for name in CLOCK_ATTRIBUTES {
        if query.context.get(name).is_some() {
            return Err(DecisionError::Invalid {
                field: format!("context.{name}"),
                message: "is set by the sidecar from its own clock; do not send it".into(),
            });
        }
    }
    if query.action != Action::UseFunction.uid() {
        return Ok(());
    }
    let values = clock.values(engine)?;
    query.stamped = match declared(snap, &query.action) {
        [true, true, true] => Some(values),
        [false, false, false] => None,
        declared => Some(values.only(|name| {
            CLOCK_ATTRIBUTES
                .iter()
                .zip(declared)
                .any(|(n, d)| d && *n == name)
        })?),
    };
    Ok(())
}

/// The clock attributes' values at `now_ms`, in [`CLOCK_ATTRIBUTES`]'
/// order. Each thread keeps the last ones it made, with the calendar they
/// were read against, for single questions: under load a thread answers
/// several a millisecond, and working out the day and writing its values
/// was 7 % of a question's instructions where they were shared
/// (BENCHMARKS.md, session 9; a batch shares its [`Clock`] instead).
/// What it saves single questions under load is not measured:
/// `benches/instructions.sh` sends them one at a time, each at a new
/// millisecond, where it costs 1.3 %.
fn values_at(engine: &Engine, now_ms: u64) -> Result<Stamped, DecisionError> {
    struct Made {
        at: u64,
        year: String,
        /// Held, so no other calendar can take its address.
        calendar: Arc<CalendarYearRecord>,
        values: Stamped,
    }
    thread_local! {
        static LAST: std::cell::RefCell<Option<Made>> = const { std::cell::RefCell::new(None) };
    }
    let kept = LAST.with_borrow(|last| {
        let Some(made) = last.as_ref().filter(|made| made.at == now_ms) else {
            return Ok(None);
        };
        let calendar = engine.calendar_year(&made.year)?;
        Ok::<_, DecisionError>(Arc::ptr_eq(&made.calendar, &calendar).then(|| made.values.clone()))
    })?;
    if let Some(values) = kept {
        return Ok(values);
    }
    let day = Day::of(now_ms);
    let year = day.date[..4].to_owned();
    let calendar = engine.calendar_year(&year)?;
    let workday = is_workday(&calendar, &day);
    let values = [
        day.now,
        json!({ "__extn": { "fn": "duration", "arg": format!("{}ms", day.ms_since_midnight) } }),
        json!(workday),
    ];
    let values = Stamped::of_json(
        CLOCK_ATTRIBUTES
            .iter()
            .map(|name| (*name).to_owned())
            .zip(values)
            .collect(),
    )?;
    LAST.set(Some(Made {
        at: now_ms,
        year,
        calendar,
        values: values.clone(),
    }));
    Ok(values)
}

/// Which clock attributes the action's context type declares, per policy
/// version. A binary deployed before the schema that declares them must
/// not add them — the schema would refuse the context and turn every
/// business question into a 400 — so the schema decides, at each reload.
/// Worked out once per version and read without a lock: every business
/// question asks (a process-wide mutex here serialized them all).
fn declared(snap: &PolicySnapshot, action: &EntityUid) -> [bool; 3] {
    // The version names the schema's exact text, so an answer filed under
    // it holds for any snapshot of that version (tests run several).
    static LAST: ArcSwapOption<(String, [bool; 3])> = ArcSwapOption::const_empty();
    if let Some(last) = LAST.load().as_deref() {
        if last.0 == snap.version() {
            return last.1;
        }
    }
    let sample = Day::of(0);
    let samples = [
        sample.now,
        json!({ "__extn": { "fn": "duration", "arg": "0ms" } }),
        json!(true),
    ];
    // The attributes are optional, so each alone is a valid context
    // exactly when the context type declares it.
    let mut found = [false; 3];
    for ((name, sample), found) in CLOCK_ATTRIBUTES.iter().zip(samples).zip(&mut found) {
        let context = json!({ *name: sample });
        *found = Context::from_json_value(context, Some((snap.schema(), action))).is_ok();
    }
    LAST.store(Some(Arc::new((snap.version().to_owned(), found))));
    found
}

/// One instant as the bureau's clock reads it.
#[derive(Debug, Clone)]
pub struct Day {
    /// `YYYY-MM-DD` in Beijing.
    pub date: String,
    /// 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    pub ms_since_midnight: i64,
    /// The instant as a Cedar `datetime` extension value.
    pub now: Value,
}

impl Day {
    pub fn of(now_ms: u64) -> Self {
        let text = format_time(now_ms, Offset::BEIJING);
        let local = now_ms as i64 + 8 * 3_600_000;
        let days = local.div_euclid(DAY_MS);
        // Cedar's datetime takes `+0800`, not RFC 3339's `+08:00`.
        let cedar = format!("{}{}", &text[..text.len() - 3], &text[text.len() - 2..]);
        Day {
            date: text[..10].to_owned(),
            // 1970-01-01 was a Thursday.
            weekday: (days + 3).rem_euclid(7) as u8,
            ms_since_midnight: local.rem_euclid(DAY_MS),
            now: json!({ "__extn": { "fn": "datetime", "arg": cedar } }),
        }
    }
}

/// A workday: Monday–Friday unless the calendar makes it a holiday, or a
/// weekend day the calendar makes a workday (调休).
pub fn is_workday(calendar: &CalendarYearRecord, day: &Day) -> bool {
    if calendar.workdays.contains(&day.date) {
        return true;
    }
    day.weekday < 5 && !calendar.holidays.contains(&day.date)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-10-01T09:30:00+08:00 (a Thursday, National Day).
    const NATIONAL_DAY_0930: u64 = 1_790_818_200_000;

    #[test]
    fn beijing_date_weekday_and_cedar_datetime() {
        let d = Day::of(NATIONAL_DAY_0930);
        assert_eq!(d.date, "2026-10-01");
        assert_eq!(d.weekday, 3);
        assert_eq!(d.ms_since_midnight, (9 * 60 + 30) * 60_000);
        assert_eq!(d.now["__extn"]["arg"], "2026-10-01T09:30:00.000+0800");
        // 2026-10-01 01:00 Beijing is still 2026-09-30 in UTC.
        assert_eq!(
            Day::of(NATIONAL_DAY_0930 - 8 * 3_600_000 - 30 * 60_000).date,
            "2026-10-01"
        );
    }

    /// The `workday` a business question gets from `clock`.
    fn stamped_workday(engine: &Engine, clock: &Clock) -> Value {
        let mut q = Query {
            principal: crate::domain::EntityKind::Staff.uid("x"),
            action: Action::UseFunction.uid(),
            resource: crate::domain::EntityKind::Function.uid("vat_filing"),
            context: json!({}),
            stamped: None,
        };
        stamp(engine, &engine.snapshot(), &mut q, clock).unwrap();
        let stamped = q.stamped.unwrap();
        let workday = stamped.json().iter().find(|(name, _)| name == "workday");
        workday.unwrap().1.clone()
    }

    /// The values a thread kept for an instant are not served once the
    /// calendar changed: a question at the same millisecond as one before
    /// a calendar feed sees the new calendar.
    #[test]
    fn the_values_kept_for_an_instant_follow_a_calendar_change() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::decision::fixture::demo_engine(dir.path());
        let workday = |now_ms| stamped_workday(&engine, &Clock::at(now_ms));
        assert_eq!(workday(NATIONAL_DAY_0930), json!(true), "a Thursday");
        assert_eq!(workday(NATIONAL_DAY_0930), json!(true));
        let mut holiday = CalendarYearRecord::default();
        holiday.holidays.insert("2026-10-01".into());
        engine.store().write(|w| w.put("2026", &holiday)).unwrap();
        for _ in 0..2 {
            assert_eq!(workday(NATIONAL_DAY_0930), json!(false), "National Day");
        }
        assert_eq!(workday(NATIONAL_DAY_0930 + 1), json!(false));
    }

    /// Questions stamped with one `Clock` (a batch's) share its values,
    /// the calendar included, even when a calendar feed lands between
    /// them; a new clock reads the new calendar.
    #[test]
    fn the_questions_of_one_clock_share_its_calendar() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::decision::fixture::demo_engine(dir.path());
        let workday = |clock: &Clock| stamped_workday(&engine, clock);
        let batch = Clock::at(NATIONAL_DAY_0930 + 7);
        assert_eq!(workday(&batch), json!(true), "a Thursday");
        let mut holiday = CalendarYearRecord::default();
        holiday.holidays.insert("2026-10-01".into());
        engine.store().write(|w| w.put("2026", &holiday)).unwrap();
        assert_eq!(workday(&batch), json!(true), "the batch's calendar");
        assert_eq!(workday(&Clock::at(NATIONAL_DAY_0930 + 7)), json!(false));
    }

    #[test]
    fn the_calendar_overrides_the_weekday_rule() {
        let mut cal = CalendarYearRecord::default();
        let thursday = Day::of(NATIONAL_DAY_0930);
        assert!(is_workday(&cal, &thursday));
        cal.holidays.insert("2026-10-01".into());
        assert!(!is_workday(&cal, &thursday));
        let sunday = Day::of(NATIONAL_DAY_0930 + 10 * DAY_MS as u64); // 2026-10-11
        assert_eq!((sunday.date.as_str(), sunday.weekday), ("2026-10-11", 6));
        assert!(!is_workday(&cal, &sunday));
        cal.workdays.insert("2026-10-11".into());
        assert!(is_workday(&cal, &sunday));
    }
}
