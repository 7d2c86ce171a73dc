//! The workday calendar's year record as business questions read it, kept
//! between store commits.
//!
//! Every business question reads the current year's calendar into its
//! context (`flows::clock`). Opening a read transaction of its own for that
//! was a second transaction per question (the first being its slice), and
//! the record changes a few times a year. The calendar is no decision input
//! (writing it bumps no generation), so the copy is filed under the store's
//! count of committed write transactions instead: any commit at all — a
//! calendar feed included — makes the next question read it again.
//! Reading that count before the snapshot makes a copy never older than
//! the count it is filed under, as with the built-entities cache.

use std::sync::Arc;

use arc_swap::ArcSwapOption;

use crate::store::{CalendarYearRecord, Store, StoreError};

/// One year's calendar as read after `commits` store commits.
struct Filed {
    commits: u64,
    year: String,
    calendar: Arc<CalendarYearRecord>,
}

/// The last calendar year read, swapped without a lock (every business
/// question reads it; a commit replaces it at most once per commit).
#[derive(Default)]
pub struct CalendarCache {
    last: ArcSwapOption<Filed>,
}

impl CalendarCache {
    /// `year`'s calendar (`YYYY`), empty when none was fed.
    pub fn year(&self, store: &Store, year: &str) -> Result<Arc<CalendarYearRecord>, StoreError> {
        let commits = store.commits();
        if let Some(filed) = self.last.load().as_deref() {
            if filed.commits == commits && filed.year == year {
                return Ok(filed.calendar.clone());
            }
        }
        let calendar = Arc::new(
            store
                .read()?
                .get::<CalendarYearRecord>(year)?
                .unwrap_or_default(),
        );
        self.last.store(Some(Arc::new(Filed {
            commits,
            year: year.to_owned(),
            calendar: calendar.clone(),
        })));
        Ok(calendar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_makes_the_next_read_see_the_new_calendar() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let cache = CalendarCache::default();
        assert!(cache.year(&store, "2026").unwrap().holidays.is_empty());
        let mut fed = CalendarYearRecord::default();
        fed.holidays.insert("2026-10-01".into());
        store
            .write(|w| w.put("2026", &fed))
            .expect("the calendar is written");
        assert_eq!(*cache.year(&store, "2026").unwrap(), fed);
        // Another year is read, not served from the one filed.
        assert!(cache.year(&store, "2027").unwrap().holidays.is_empty());
        assert_eq!(*cache.year(&store, "2026").unwrap(), fed);
    }
}
