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
use crate::decision::{CedarValue, DecisionError, Engine, Query, Stamped, CLOCK_ATTRIBUTES};
use crate::domain::Action;
use crate::policy::PolicySnapshot;
use crate::store::CalendarYearRecord;

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
        made(&self.values, || values_at(engine, self.now_ms)).cloned()
    }
}

/// `cell`'s value, made by `make` if it holds none yet; a `make` that
/// fails leaves it empty.
fn made<T>(
    cell: &OnceLock<T>,
    make: impl FnOnce() -> Result<T, DecisionError>,
) -> Result<&T, DecisionError> {
    if let Some(value) = cell.get() {
        return Ok(value);
    }
    let value = make()?;
    Ok(cell.get_or_init(|| value))
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
/// order. The ones made for each of the last few milliseconds are kept,
/// with the calendar they were read against, for the single questions of
/// the same millisecond: under load the service answers tens of them a
/// millisecond, and working out the day and making its values Cedar's
/// costs several µs (the `clock` group of `benches/decision.rs`). They
/// are shared by every thread, not kept per thread (each thread making its
/// own was 9 % of the server's CPU under the mix: BENCHMARKS.md, session
/// 14), and a question that started a millisecond before another thread's
/// does not take the slot of that one's (a batch shares its [`Clock`]
/// anyway).
fn values_at(engine: &Engine, now_ms: u64) -> Result<Stamped, DecisionError> {
    struct Made {
        at: u64,
        year: String,
        /// Held, so no other calendar can take its address.
        calendar: Arc<CalendarYearRecord>,
        values: Stamped,
    }
    const KEPT: usize = 4;
    static LAST: [ArcSwapOption<Made>; KEPT] = [const { ArcSwapOption::const_empty() }; KEPT];
    let slot = &LAST[now_ms as usize % KEPT];
    if let Some(made) = slot.load().as_deref().filter(|made| made.at == now_ms) {
        let calendar = engine.calendar_year(&made.year)?;
        if Arc::ptr_eq(&made.calendar, &calendar) {
            return Ok(made.values.clone());
        }
    }
    let day = Day::of(now_ms);
    let year = day.date[..4].to_owned();
    let calendar = engine.calendar_year(&year)?;
    let values = made_at(&day, is_workday(&calendar, &day))?;
    slot.store(Some(Arc::new(Made {
        at: now_ms,
        year,
        calendar,
        values: values.clone(),
    })));
    Ok(values)
}

/// The clock attributes at `day`'s instant, as JSON and as Cedar's values.
fn made_at(day: &Day, workday: bool) -> Result<Stamped, DecisionError> {
    let (now, local_time) = instant(day)?;
    let [now_name, local_name, workday_name] = CLOCK_ATTRIBUTES.map(str::to_owned);
    Ok(Stamped::of_values(vec![
        (now_name, day.now.clone(), now),
        (
            local_name,
            json!({ "__extn": { "fn": "duration", "arg": format!("{}ms", day.ms_since_midnight) } }),
            local_time,
        ),
        (workday_name, json!(workday), CedarValue::from(workday)),
    ]))
}

/// `now` and `localTime` at `day`'s instant, made by Cedar's arithmetic
/// alone at a new millisecond: the day's start is parsed once a day, the
/// start of the second is the day's offset by a duration parsed once a
/// second, the millisecond an offset by one of a thousand durations each
/// parsed the first time it is needed, and `localTime` is
/// `now.durationSince(start)`. A duration parsed at every millisecond (a
/// pattern of nine groups) was most of making the values (BENCHMARKS.md,
/// session 17).
fn instant(day: &Day) -> Result<(CedarValue, CedarValue), DecisionError> {
    static START: Kept = ArcSwapOption::const_empty();
    static SECOND: Kept = ArcSwapOption::const_empty();
    static MILLIS: [OnceLock<CedarValue>; 1000] = [const { OnceLock::new() }; 1000];
    let start = kept(&START, &day.date, 0, || {
        CedarValue::datetime(&format!("{}T00:00:00+0800", day.date))
    })?;
    let second = day.ms_since_midnight / 1000;
    let second_start = kept(&SECOND, &day.date, second, || {
        start.offset(&CedarValue::duration_ms(second * 1000)?)
    })?;
    let ms = day.ms_since_midnight % 1000;
    let millis = &MILLIS[usize::try_from(ms).expect("a day's ms are not negative")];
    let now = second_start.offset(made(millis, || CedarValue::duration_ms(ms))?)?;
    let local_time = now.duration_since(&start)?;
    Ok((now, local_time))
}

/// The last value made for one (date, instant of it), shared by every
/// thread.
type Kept = ArcSwapOption<(String, i64, CedarValue)>;

fn kept(
    slot: &Kept,
    date: &str,
    at: i64,
    make: impl FnOnce() -> Result<CedarValue, DecisionError>,
) -> Result<CedarValue, DecisionError> {
    if let Some(k) = slot.load().as_deref().filter(|k| k.0 == date && k.1 == at) {
        return Ok(k.2.clone());
    }
    let value = make()?;
    slot.store(Some(Arc::new((date.to_owned(), at, value.clone()))));
    Ok(value)
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

    /// The values made at an instant are the ones their JSON spells, as
    /// Cedar reads it: at a day's start, its last millisecond, around a
    /// UTC midnight, and on a workday and a holiday.
    #[test]
    fn the_values_made_at_an_instant_are_what_their_json_spells() {
        let dir = tempfile::tempdir().unwrap();
        let engine = crate::decision::fixture::demo_engine(dir.path());
        let beijing_midnight = NATIONAL_DAY_0930 - (9 * 60 + 30) * 60_000;
        for now_ms in [
            NATIONAL_DAY_0930,
            beijing_midnight,
            beijing_midnight - 1,
            beijing_midnight + 8 * 3_600_000 - 1,
            beijing_midnight + 8 * 3_600_000,
            NATIONAL_DAY_0930 + 999,
            NATIONAL_DAY_0930 + 1_000,
            NATIONAL_DAY_0930 + 59_999,
            NATIONAL_DAY_0930 + 12_345_678,
            beijing_midnight + 86_400_000 - 1_001,
            0,
        ] {
            for workday in [true, false] {
                let made = made_at(&Day::of(now_ms), workday).unwrap();
                let read = Stamped::of_json(made.json().to_vec()).unwrap();
                assert_eq!(
                    made.context().as_ref(),
                    read.context().as_ref(),
                    "at {now_ms}"
                );
            }
        }
        // And what a question is stamped with is made that way.
        let mut q = Query {
            principal: crate::domain::EntityKind::Staff.uid("x"),
            action: Action::UseFunction.uid(),
            resource: crate::domain::EntityKind::Function.uid("vat_filing"),
            context: json!({}),
            stamped: None,
        };
        stamp(
            &engine,
            &engine.snapshot(),
            &mut q,
            &Clock::at(NATIONAL_DAY_0930),
        )
        .unwrap();
        let stamped = q.stamped.unwrap();
        let read = Stamped::of_json(stamped.json().to_vec()).unwrap();
        assert_eq!(stamped.context().as_ref(), read.context().as_ref());
    }

    fn business_question() -> Query {
        Query {
            principal: crate::domain::EntityKind::Staff.uid("x"),
            action: Action::UseFunction.uid(),
            resource: crate::domain::EntityKind::Function.uid("vat_filing"),
            context: json!({}),
            stamped: None,
        }
    }

    /// The `workday` a business question gets from `clock`.
    fn stamped_workday(engine: &Engine, clock: &Clock) -> Value {
        let mut q = business_question();
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
