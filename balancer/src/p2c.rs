//! [`TwoChoices`]: the power-of-two-choices pick, with no tower or tokio types.
//!
//! Given the time and the number of ready candidates, it draws two distinct ones at random,
//! asks the caller for their costs, and returns the cheaper (the first drawn on a tie, the
//! second if a cost is NaN), unless the dearer has gone unpicked for longer than
//! `force_pick_after`: then the dearer, so that an endpoint the balancer avoids still gets a
//! request now and then and its statistics cannot go stale. Only the two drawn candidates are
//! asked for their cost.

use std::time::Duration;

use rampart_core::ConfigError;

use crate::P2cConfig;

/// One drawn candidate, as the pick sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Its cost now, lower is better (a [`Score`](crate::Score)'s).
    pub cost: f64,
    /// When it was last picked, or added (the force-pick clock starts then).
    pub last_pick: Duration,
}

/// The outcome of a pick between two drawn candidates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// The positions drawn, distinct, in draw order.
    pub drawn: [usize; 2],
    /// Their costs, in the same order.
    pub costs: [f64; 2],
    /// The position to use: one of `drawn`.
    pub chosen: usize,
}

/// The power-of-two-choices rule: two distinct candidates drawn at random, the cheaper used,
/// the dearer forced in once it has gone unpicked for longer than
/// [`force_pick_after`](P2cConfig::force_pick_after).
///
/// [`P2c`](crate::P2c) keeps one and gives it the time and its ready endpoints; it can be
/// tested and measured alone.
///
/// ```
/// use std::time::Duration;
/// use rampart_balancer::{Candidate, P2cConfig, TwoChoices};
///
/// let mut choices = TwoChoices::new(&P2cConfig::default().with_seed(7))?;
/// let cost = [3.0, 1.0, 2.0];
/// let now = Duration::from_secs(1);
/// let pair = choices
///     .pick(now, cost.len(), |at| Candidate { cost: cost[at], last_pick: now })
///     .expect("three candidates");
/// assert_ne!(pair.drawn[0], pair.drawn[1]);
/// // All were picked just now: the cheaper of the two drawn is used.
/// let cheaper = if pair.costs[0] <= pair.costs[1] { pair.drawn[0] } else { pair.drawn[1] };
/// assert_eq!(pair.chosen, cheaper);
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// # Randomness
///
/// Seeded by [`P2cConfig::seed`] (from entropy without one): the same seed and the same calls
/// draw the same pairs.
#[derive(Debug, Clone)]
pub struct TwoChoices {
    rng: fastrand::Rng,
    force_pick_after: Duration,
}

impl TwoChoices {
    /// The pick `config` describes (its `force_pick_after` and `seed`).
    ///
    /// # Errors
    ///
    /// If `config` is invalid (see [`P2cConfig::validate`]).
    pub fn new(config: &P2cConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::from_valid(config))
    }

    /// The pick of a configuration already validated.
    pub(crate) fn from_valid(config: &P2cConfig) -> Self {
        Self {
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            force_pick_after: config.force_pick_after,
        }
    }

    /// Draws two distinct positions below `len`, asks `candidate` for each (first drawn
    /// first) and returns the one to use at `now`. `None` when `len` is below two: nothing is
    /// drawn (with a single candidate, that one is the pick).
    pub fn pick(
        &mut self,
        now: Duration,
        len: usize,
        mut candidate: impl FnMut(usize) -> Candidate,
    ) -> Option<Pair> {
        let drawn = self.draw(len)?;
        let (a, b) = (candidate(drawn[0]), candidate(drawn[1]));
        Some(Pair {
            drawn,
            costs: [a.cost, b.cost],
            chosen: drawn[self.choose(now, a, b)],
        })
    }

    /// The pick of the `nth` handle of a shared balancer configured by `config` (already
    /// validated): with a seed, its own stream of draws derived from it (the first handle's is
    /// `P2c`'s), so that handles do not draw the same pairs in step; without, from this
    /// thread's generator.
    pub(crate) fn for_handle(config: &P2cConfig, nth: u64) -> Self {
        Self {
            rng: config.seed.map_or_else(fastrand::Rng::new, |seed| {
                fastrand::Rng::with_seed(seed ^ nth.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            }),
            force_pick_after: config.force_pick_after,
        }
    }

    /// Two distinct positions below `len`, uniformly over the pairs; `None` if `len < 2`.
    #[inline]
    pub(crate) fn draw(&mut self, len: usize) -> Option<[usize; 2]> {
        if len < 2 {
            return None;
        }
        let first = self.rng.usize(..len);
        // One of the `len − 1` others: a draw at or past `first` shifts up by one.
        let mut second = self.rng.usize(..len - 1);
        if second >= first {
            second += 1;
        }
        Some([first, second])
    }

    /// Which of `a` (0) and `b` (1) to use at `now`: the cheaper (`a` on a tie; `b` when
    /// either cost is NaN), unless the other has gone unpicked for longer than
    /// `force_pick_after`.
    #[inline]
    pub(crate) fn choose(&self, now: Duration, a: Candidate, b: Candidate) -> usize {
        let (better, worse) = if a.cost <= b.cost { (0, 1) } else { (1, 0) };
        let last_pick = [a.last_pick, b.last_pick][worse];
        if now.saturating_sub(last_pick) > self.force_pick_after {
            worse
        } else {
            better
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORCE: Duration = Duration::from_secs(3);
    const NOW: Duration = Duration::from_secs(100);

    fn seeded(seed: u64) -> TwoChoices {
        TwoChoices::new(&P2cConfig::default().with_seed(seed)).expect("valid")
    }

    fn fresh(cost: f64) -> Candidate {
        Candidate {
            cost,
            last_pick: NOW,
        }
    }

    #[test]
    fn the_pair_is_two_distinct_candidates_and_every_pair_comes_up() {
        const DRAWS: u32 = 100_000;
        for len in [2, 3, 10] {
            let mut choices = seeded(1);
            let mut seen = vec![vec![0_u32; len]; len];
            for _ in 0..DRAWS {
                let mut asked = Vec::new();
                let pair = choices
                    .pick(NOW, len, |at| {
                        asked.push(at);
                        fresh(1.0)
                    })
                    .expect("two or more");
                let [a, b] = pair.drawn;
                assert!(a != b && a < len && b < len, "{len}: drew {a} and {b}");
                assert_eq!(asked, [a, b], "only the drawn are asked, in draw order");
                seen[a][b] += 1;
            }
            // Every ordered pair, near its share of 1 / (len × (len − 1)).
            let share = f64::from(DRAWS) / (len * (len - 1)) as f64;
            for (a, row) in seen.iter().enumerate() {
                for (b, &count) in row.iter().enumerate().filter(|(b, _)| *b != a) {
                    let ratio = f64::from(count) / share;
                    assert!(
                        (0.8..1.2).contains(&ratio),
                        "{len}: ({a}, {b}) {count} times"
                    );
                }
            }
        }
    }

    #[test]
    fn fewer_than_two_candidates_draw_nothing() {
        let mut choices = seeded(1);
        for len in [0, 1] {
            let pick = choices.pick(NOW, len, |_| panic!("nothing to ask"));
            assert_eq!(pick, None);
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_pairs() {
        let draws = |seed| {
            let mut choices = seeded(seed);
            (0..100)
                .map(|_| choices.pick(NOW, 10, |_| fresh(1.0)).expect("ten").drawn)
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert_ne!(draws(3), draws(4));
    }

    #[test]
    fn the_cheaper_candidate_is_chosen_and_a_tie_goes_to_the_first_drawn() {
        let mut choices = seeded(2);
        let costs = [5.0, 1.0, 3.0, 1.0];
        for _ in 0..1_000 {
            let pair = choices
                .pick(NOW, costs.len(), |at| fresh(costs[at]))
                .expect("four");
            let [a, b] = pair.drawn;
            assert_eq!(pair.costs, [costs[a], costs[b]]);
            let expected = if costs[a] <= costs[b] { a } else { b };
            assert_eq!(pair.chosen, expected, "{pair:?}");
        }
    }

    #[test]
    fn the_cheaper_wins_a_tie_goes_to_the_first_and_a_nan_to_the_second() {
        let choices = seeded(1);
        assert_eq!(choices.choose(NOW, fresh(1.0), fresh(2.0)), 0);
        assert_eq!(choices.choose(NOW, fresh(2.0), fresh(1.0)), 1);
        assert_eq!(choices.choose(NOW, fresh(1.0), fresh(1.0)), 0, "tie: first");
        assert_eq!(choices.choose(NOW, fresh(f64::NAN), fresh(1.0)), 1);
        assert_eq!(choices.choose(NOW, fresh(1.0), fresh(f64::NAN)), 1);
    }

    #[test]
    fn the_dearer_is_forced_in_once_unpicked_for_longer_than_force_pick_after() {
        let choices = seeded(1);
        let cheap = fresh(1.0);
        let dear_since = |last_pick| Candidate {
            cost: 100.0,
            last_pick,
        };
        // Exactly `force_pick_after` ago: not yet.
        assert_eq!(
            choices.choose(NOW, cheap, dear_since(NOW.saturating_sub(FORCE))),
            0
        );
        assert_eq!(
            choices.choose(NOW, dear_since(NOW.saturating_sub(FORCE)), cheap),
            1
        );
        // Longer: the dearer, whichever was drawn first.
        let stale = NOW.saturating_sub(FORCE + Duration::from_nanos(1));
        assert_eq!(choices.choose(NOW, cheap, dear_since(stale)), 1);
        assert_eq!(choices.choose(NOW, dear_since(stale), cheap), 0);
        // A cheaper candidate unpicked for long is simply the better one.
        let stale_cheap = Candidate {
            cost: 1.0,
            last_pick: stale,
        };
        assert_eq!(choices.choose(NOW, stale_cheap, dear_since(NOW)), 0);
        // A last pick after `now` (a clock stepping back) reads as just picked.
        let future = NOW + Duration::from_secs(10);
        assert_eq!(choices.choose(NOW, cheap, dear_since(future)), 0);
    }

    #[test]
    fn the_force_pick_follows_the_configured_interval() {
        let config = P2cConfig {
            force_pick_after: Duration::from_millis(10),
            ..P2cConfig::default().with_seed(1)
        };
        let mut choices = TwoChoices::new(&config).expect("valid");
        let last_picks = [NOW, NOW.saturating_sub(Duration::from_millis(11))];
        let costs = [1.0, 9.0];
        let pair = choices
            .pick(NOW, 2, |at| Candidate {
                cost: costs[at],
                last_pick: last_picks[at],
            })
            .expect("two");
        assert_eq!(pair.chosen, 1, "11 ms unpicked, against 10 ms");
    }

    #[test]
    fn an_invalid_config_is_refused() {
        let config = P2cConfig {
            force_pick_after: Duration::ZERO,
            ..P2cConfig::default()
        };
        let error = TwoChoices::new(&config).expect_err("zero");
        assert_eq!(error.field(), "force_pick_after");
    }
}
