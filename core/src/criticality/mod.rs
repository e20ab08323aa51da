//! [`Criticality`]: how important a request is, so that an overloaded service sheds the least
//! important work first.
//!
//! Four classes, from the SRE book's "Handling Overload" (Google tags every RPC with one), in
//! increasing importance: [`Sheddable`](CriticalityClass::Sheddable) (batch work, prefetches: shed first),
//! [`SheddablePlus`](CriticalityClass::SheddablePlus) (work whose failure is retried later),
//! [`Critical`](CriticalityClass::Critical) (the default: what a user waits for) and
//! [`CriticalPlus`](CriticalityClass::CriticalPlus) (the most important, kept as long as anything is).
//! Inside a class, a finer [`level`](Criticality::level) from 0 to 127 orders requests a service
//! wants shed consistently (DAGOR hashes the user id into such levels, so that the same users
//! are shed first and the others keep whole sessions).
//!
//! On the wire a criticality is its class's name, and the level after a slash when it is not 0:
//! `critical`, `sheddable-plus/42`. Parsing accepts either case and `_` for `-` (gRPC's
//! `CRITICAL_PLUS` spelling); anything else is an error naming the value, which the layers that
//! read it from a request turn into the default and a counted metric, never an error for the
//! caller.
//!
//! ```
//! use rampart_core::{Criticality, CriticalityClass};
//!
//! let batch: Criticality = "SHEDDABLE".parse()?;
//! let checkout = Criticality::default();
//! assert!(batch < checkout);
//! assert_eq!(checkout, Criticality::CRITICAL);
//! assert_eq!(checkout.class(), CriticalityClass::Critical);
//!
//! let user: Criticality = "sheddable-plus/42".parse()?;
//! assert_eq!((user.class(), user.level()), (CriticalityClass::SheddablePlus, 42));
//! assert_eq!(user.to_string(), "sheddable-plus/42");
//! assert!("urgent".parse::<Criticality>().is_err());
//! # Ok::<(), rampart_core::ParseCriticalityError>(())
//! ```

use std::fmt;
use std::str::FromStr;

mod rates;

pub use self::rates::ArrivalRates;

/// A criticality class, ordered from the least important to the most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CriticalityClass {
    /// Work that may be dropped under any overload: batch jobs, prefetches. Shed first.
    Sheddable,
    /// Work whose failure is tolerated and retried later.
    SheddablePlus,
    /// What a user is waiting for. The default.
    #[default]
    Critical,
    /// The most important work, kept while anything is.
    CriticalPlus,
}

impl CriticalityClass {
    /// Every class, from the least important to the most.
    pub const ALL: [Self; 4] = [
        Self::Sheddable,
        Self::SheddablePlus,
        Self::Critical,
        Self::CriticalPlus,
    ];

    /// The class's place in [`ALL`](Self::ALL), from 0 (sheddable) to 3 (critical-plus).
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The class's name on the wire and in metrics: `sheddable`, `sheddable-plus`, `critical`,
    /// `critical-plus`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sheddable => "sheddable",
            Self::SheddablePlus => "sheddable-plus",
            Self::Critical => "critical",
            Self::CriticalPlus => "critical-plus",
        }
    }
}

impl fmt::Display for CriticalityClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How important a request is: a [`CriticalityClass`], and a finer level inside it (0 to
/// [`MAX_LEVEL`](Self::MAX_LEVEL)). Ordered by class, then by level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Criticality {
    class: CriticalityClass,
    level: u8,
}

impl Criticality {
    /// The highest level inside a class.
    pub const MAX_LEVEL: u8 = 127;
    /// [`CriticalityClass::Sheddable`] at level 0.
    pub const SHEDDABLE: Self = Self::new(CriticalityClass::Sheddable);
    /// [`CriticalityClass::SheddablePlus`] at level 0.
    pub const SHEDDABLE_PLUS: Self = Self::new(CriticalityClass::SheddablePlus);
    /// [`CriticalityClass::Critical`] at level 0: the default.
    pub const CRITICAL: Self = Self::new(CriticalityClass::Critical);
    /// [`CriticalityClass::CriticalPlus`] at level 0.
    pub const CRITICAL_PLUS: Self = Self::new(CriticalityClass::CriticalPlus);

    /// `class`, at level 0.
    pub const fn new(class: CriticalityClass) -> Self {
        Self { class, level: 0 }
    }

    /// `class` at `level`, capped at [`MAX_LEVEL`](Self::MAX_LEVEL).
    pub const fn with_level(class: CriticalityClass, level: u8) -> Self {
        let level = if level > Self::MAX_LEVEL {
            Self::MAX_LEVEL
        } else {
            level
        };
        Self { class, level }
    }

    /// How many bands [`band`](Self::band) numbers.
    pub const BANDS: usize = 16;

    /// The band this criticality falls in, from 0 (the lowest) to `BANDS - 1`: its class's
    /// four bands, each a quarter of the levels. Layers that shed by criticality count demand
    /// per band, which orders a class's levels at a quarter's grain at a fixed small cost.
    #[inline]
    pub const fn band(self) -> usize {
        self.class as usize * 4 + (self.level / 32) as usize
    }

    /// The class.
    pub const fn class(self) -> CriticalityClass {
        self.class
    }

    /// The level inside the class.
    pub const fn level(self) -> u8 {
        self.level
    }
}

impl From<CriticalityClass> for Criticality {
    fn from(class: CriticalityClass) -> Self {
        Self::new(class)
    }
}

impl fmt::Display for Criticality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.level == 0 {
            f.write_str(self.class.as_str())
        } else {
            write!(f, "{}/{}", self.class.as_str(), self.level)
        }
    }
}

/// A value that is not a criticality, kept (up to 64 bytes) for the error's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseCriticalityError {
    value: String,
}

impl ParseCriticalityError {
    fn new(value: &str) -> Self {
        let end = (0..=value.len().min(64))
            .rev()
            .find(|&at| value.is_char_boundary(at))
            .unwrap_or(0);
        Self {
            value: value[..end].to_owned(),
        }
    }

    /// The value that could not be read (its first 64 bytes).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for ParseCriticalityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not a criticality: {:?} (expected sheddable, sheddable-plus, critical or \
             critical-plus, with an optional /level from 0 to 127)",
            self.value
        )
    }
}

impl std::error::Error for ParseCriticalityError {}

impl FromStr for Criticality {
    type Err = ParseCriticalityError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let error = || ParseCriticalityError::new(value);
        let text = value.trim();
        let (name, level) = match text.split_once('/') {
            Some((name, level)) => (name, Some(level)),
            None => (text, None),
        };
        let class = CriticalityClass::ALL
            .into_iter()
            .find(|class| same_name(name, class.as_str()))
            .ok_or_else(error)?;
        let level = match level {
            None => 0,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits
                    .parse::<u8>()
                    .ok()
                    .filter(|&level| level <= Self::MAX_LEVEL)
                    .ok_or_else(error)?
            }
            Some(_) => return Err(error()),
        };
        Ok(Self { class, level })
    }
}

/// Whether `given` names `name`, in either case and with `_` for `-`.
fn same_name(given: &str, name: &str) -> bool {
    given.len() == name.len()
        && given.bytes().zip(name.bytes()).all(|(given, name)| {
            given.to_ascii_lowercase() == name || (given == b'_' && name == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_order_from_sheddable_to_critical_plus_and_levels_inside_them() {
        assert!(
            CriticalityClass::ALL
                .windows(2)
                .all(|pair| pair[0] < pair[1])
        );
        let low = Criticality::with_level(CriticalityClass::Critical, 127);
        let high = Criticality::new(CriticalityClass::CriticalPlus);
        assert!(low < high, "a class outranks any level of the one below");
        assert!(
            Criticality::with_level(CriticalityClass::Sheddable, 3)
                > Criticality::new(CriticalityClass::Sheddable)
        );
        assert_eq!(
            Criticality::default(),
            Criticality::new(CriticalityClass::Critical)
        );
        assert_eq!(
            Criticality::with_level(CriticalityClass::Sheddable, 200).level(),
            127,
            "capped"
        );
    }

    #[test]
    fn bands_follow_the_order_of_criticalities() {
        let mut all = Vec::new();
        for class in CriticalityClass::ALL {
            for level in 0..=Criticality::MAX_LEVEL {
                all.push(Criticality::with_level(class, level));
            }
        }
        assert!(all.windows(2).all(|pair| pair[0].band() <= pair[1].band()));
        assert_eq!(all[0].band(), 0);
        assert_eq!(all[all.len() - 1].band(), Criticality::BANDS - 1);
        assert_eq!(
            Criticality::CRITICAL.band(),
            8,
            "each class's level 0 starts its bands"
        );
        assert_eq!(
            Criticality::with_level(CriticalityClass::Critical, 32).band(),
            9
        );
    }

    #[test]
    fn every_class_and_level_round_trips_through_its_text() {
        for class in CriticalityClass::ALL {
            for level in [0, 1, 42, Criticality::MAX_LEVEL] {
                let criticality = Criticality::with_level(class, level);
                assert_eq!(criticality.to_string().parse(), Ok(criticality));
            }
        }
    }

    #[test]
    fn grpc_spellings_and_surrounding_blanks_are_read() {
        let cases = [
            ("CRITICAL_PLUS", CriticalityClass::CriticalPlus),
            ("Sheddable_Plus", CriticalityClass::SheddablePlus),
            (" critical ", CriticalityClass::Critical),
            ("SHEDDABLE", CriticalityClass::Sheddable),
        ];
        for (text, class) in cases {
            assert_eq!(text.parse(), Ok(Criticality::new(class)), "{text:?}");
        }
    }

    #[test]
    fn anything_else_is_an_error_naming_the_value() {
        for bad in [
            "",
            "urgent",
            "critical+",
            "critical-plus-plus",
            "critical/",
            "critical/128",
            "critical/-1",
            "critical/+1",
            "critical/1/2",
            "critical /1",
            "sheddable-plus\u{e9}",
        ] {
            let error = bad.parse::<Criticality>().expect_err(bad);
            assert_eq!(error.value(), bad, "{bad:?}");
            assert!(error.to_string().contains("not a criticality"), "{error}");
        }
        let long = "x".repeat(1_000);
        assert_eq!(
            long.parse::<Criticality>().expect_err("long").value().len(),
            64
        );
        let wide = "é".repeat(40); // 80 bytes: cut at a character boundary
        assert_eq!(
            wide.parse::<Criticality>().expect_err("wide").value(),
            "é".repeat(32)
        );
    }
}
