use std::sync::atomic::{AtomicU64, Ordering};

use rampart_core::{ConfigError, Criticality, CriticalityClass, Outcome, check};

use super::{Budget, BudgetSnapshot, floor};

/// Thousandths of a token: gRPC specifies token ratios to three decimal places.
const MILLI: u64 = 1_000;

/// The configuration of a [`TokenBudget`] (gRPC's `retryThrottling`).
///
/// | field | default | rule |
/// | --- | --- | --- |
/// | `max_tokens` | 10 | 1 to 1 000 |
/// | `token_ratio` | 0.1 | above 0, at most 1, rounded to three decimals |
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenConfig {
    /// Tokens when full; retries stop at half of it.
    pub max_tokens: u32,
    /// Tokens a successful attempt earns back (a failed one costs 1).
    pub token_ratio: f64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            max_tokens: 10,
            token_ratio: 0.1,
        }
    }
}

impl TokenConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// `max_tokens` outside 1–1 000; `token_ratio` NaN, not above 0 (after rounding to three
    /// decimals), or above 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check::within("max_tokens", self.max_tokens, 1..=1_000)?;
        check::finite_in("token_ratio", self.token_ratio, 0.0..=1.0)?;
        if milli(self.token_ratio) == 0 {
            return Err(ConfigError::new("token_ratio", "must be at least 0.001")
                .with_value(self.token_ratio));
        }
        Ok(())
    }

    /// Builds the budget, full.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build(self) -> Result<TokenBudget, ConfigError> {
        self.validate()?;
        let max = u64::from(self.max_tokens) * MILLI;
        let threshold = max / 2;
        // Each class's floor: the threshold, plus its kept-back share of the tokens above it.
        let floors = CriticalityClass::ALL.map(|class| {
            let kept = floor(class, u128::from(max - threshold));
            threshold + u64::try_from(kept).unwrap_or(u64::MAX)
        });
        Ok(TokenBudget {
            config: self,
            tokens: AtomicU64::new(max),
            max,
            ratio: milli(self.token_ratio),
            threshold,
            floors,
        })
    }
}

fn milli(ratio: f64) -> u64 {
    (ratio * MILLI as f64).round() as u64
}

/// gRPC's retry throttling (proposal A6): a token bucket that failures drain and successes
/// refill, and that stops retries while it is half empty.
///
/// It starts full (`max_tokens`). Every failed attempt costs one token, every successful one
/// earns `token_ratio` back (up to `max_tokens`); a retry is allowed only while more than
/// `max_tokens / 2` tokens remain. Requests themselves cost nothing: [`deposit`](Budget::deposit)
/// does nothing.
///
/// ```
/// use rampart_core::Outcome;
/// use rampart_retry::{Budget, TokenConfig};
///
/// let budget = TokenConfig::default().build()?; // 10 tokens, ratio 0.1
/// for _ in 0..5 {
///     budget.record(Outcome::Failure);
/// }
/// assert!(!budget.withdraw(), "5 tokens left: not above half of 10");
/// budget.record(Outcome::Success); // 5.1
/// assert!(budget.withdraw());
/// # Ok::<(), rampart_core::ConfigError>(())
/// ```
///
/// As tower's `Budget` (for tower's own `Retry`), `deposit` counts a success and `withdraw` a
/// failure before answering, the way tower policies call them.
#[derive(Debug)]
pub struct TokenBudget {
    config: TokenConfig,
    /// Thousandths of a token.
    tokens: AtomicU64,
    max: u64,
    ratio: u64,
    threshold: u64,
    /// Per criticality class (by index): the tokens a retry of the class needs more than.
    floors: [u64; 4],
}

impl TokenBudget {
    /// Tokens left.
    pub fn tokens(&self) -> f64 {
        self.tokens.load(Ordering::Relaxed) as f64 / MILLI as f64
    }

    /// The configuration the budget was built with.
    pub fn config(&self) -> &TokenConfig {
        &self.config
    }

    fn change(&self, change: impl Fn(u64) -> u64) {
        // No write when nothing changes (a healthy client at `max`, an empty budget failing):
        // the common case then only reads the shared line. `Err` means exactly that.
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tokens| {
                Some(change(tokens)).filter(|&changed| changed != tokens)
            });
    }
}

impl Budget for TokenBudget {
    fn deposit(&self) {}

    fn withdraw(&self) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.threshold
    }

    /// Allowed while more tokens remain than the threshold plus the class's
    /// [`kept_back`](crate::kept_back) share of the tokens above it (`max_tokens / 2`): with
    /// 10 tokens, more than 5 for critical retries, 6.25 for sheddable-plus, 7.5 for sheddable.
    fn withdraw_for(&self, criticality: Criticality) -> bool {
        self.tokens.load(Ordering::Relaxed) > self.floors[criticality.class().index()]
    }

    fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.change(|tokens| (tokens + self.ratio).min(self.max)),
            Outcome::Failure => self.change(|tokens| tokens.saturating_sub(MILLI)),
            Outcome::Ignore => {}
        }
    }

    fn snapshot(&self) -> BudgetSnapshot {
        let above = self.tokens.load(Ordering::Relaxed) as f64 - self.threshold as f64;
        BudgetSnapshot {
            remaining: above / MILLI as f64,
        }
    }
}

impl tower::retry::budget::Budget for TokenBudget {
    /// A successful response: earns `token_ratio`.
    fn deposit(&self) {
        Budget::record(self, Outcome::Success);
    }

    /// A failed response that wants a retry: costs a token, then allows the retry while more
    /// than half the tokens remain.
    fn withdraw(&self) -> bool {
        Budget::record(self, Outcome::Failure);
        Budget::withdraw(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_field_is_named() {
        let base = TokenConfig::default();
        let cases = [
            (
                TokenConfig {
                    max_tokens: 0,
                    ..base
                },
                "max_tokens",
            ),
            (
                TokenConfig {
                    max_tokens: 1_001,
                    ..base
                },
                "max_tokens",
            ),
            (
                TokenConfig {
                    token_ratio: 0.0,
                    ..base
                },
                "token_ratio",
            ),
            (
                TokenConfig {
                    token_ratio: 0.0004,
                    ..base
                },
                "token_ratio",
            ),
            (
                TokenConfig {
                    token_ratio: 1.5,
                    ..base
                },
                "token_ratio",
            ),
            (
                TokenConfig {
                    token_ratio: f64::NAN,
                    ..base
                },
                "token_ratio",
            ),
        ];
        for (config, field) in cases {
            assert_eq!(config.validate().unwrap_err().field(), field, "{config:?}");
        }
    }

    #[test]
    fn ratios_are_kept_to_three_decimals() {
        let budget = TokenConfig {
            max_tokens: 10,
            token_ratio: 0.1234,
        }
        .build()
        .expect("valid");
        assert_eq!(budget.ratio, 123);
    }
}
