//! The ids the simulator makes up: its own `requestID`s, `taskID`s, `applicationID`s and
//! message ids. No id is ever given twice, within a run or across runs.
//!
//! An id is the run's id, a random (version 4) UUID drawn once when the simulator starts,
//! followed by a counter: `5f0c3a8e-2b1d-4c6f-9a7e-0d4b8c2e1f3a-17`. Within a run the counter
//! never repeats (a `u64` would take centuries to wrap); across runs two runs would have to
//! draw the same 122 random bits. Drawing each id at random instead, as the simulator once did
//! with nine-digit task ids, repeats ids within a single run: about ten among 132,000 tasks.

use uuid::Uuid;

/// Gives out ids that never repeat.
#[derive(Debug)]
pub struct Ids {
    run: Uuid,
    given: u64,
}

impl Ids {
    /// A source of ids for a new run, with a run id of its own.
    pub fn new() -> Ids {
        Ids {
            run: Uuid::new_v4(),
            given: 0,
        }
    }

    /// The next id: never one this source or another gave before.
    pub fn next_id(&mut self) -> String {
        self.given += 1;
        format!("{}-{}", self.run, self.given)
    }
}

impl Default for Ids {
    fn default() -> Ids {
        Ids::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_id_repeats_within_a_run_or_across_two() {
        let mut seen = HashSet::new();
        for mut ids in [Ids::new(), Ids::new()] {
            for _ in 0..200_000 {
                let id = ids.next_id();
                assert!(
                    id.len() <= 200,
                    "{id} is longer than the task table's columns"
                );
                assert!(seen.insert(id.clone()), "{id} was given twice");
            }
        }
        assert_eq!(seen.len(), 400_000);
    }
}
