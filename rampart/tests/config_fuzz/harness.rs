//! Runs random configurations of one builder and judges each: a [`ConfigError`] naming a
//! field that really breaks its documented rule, or a configuration that works when used.
//! Never a panic: each case runs inside `catch_unwind`, and a panic hook also catches panics
//! in tasks a case spawned (tokio keeps those from unwinding into the case).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use rampart::ConfigError;

use super::hostile::Draw;

/// Configurations per builder, unless `RAMPART_FUZZ_CASES` says otherwise.
const DEFAULT_CASES: usize = 100_000;
/// Seed of the draws, unless `RAMPART_FUZZ_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5EED_C0DE;
/// Distinct failures printed in full per builder.
const SHOWN: usize = 12;

/// What using a built configuration showed: `Err` says what was wrong.
pub type Used = Result<(), String>;

/// Fails a use with a message, unless `$cond` holds.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {{
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($message)+));
        }
    }};
}
pub(crate) use ensure;

thread_local! {
    /// Panics on this thread while a case runs: message and location.
    static CAUGHT: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Routes panics on a thread that is running a case into [`CAUGHT`] (silently); others go to
/// the default hook.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let captured = CAUGHT.with(|caught| {
                caught.borrow_mut().as_mut().is_some_and(|panics| {
                    let message = info
                        .payload()
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| info.payload().downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let location = info
                        .location()
                        .map(|l| format!("{}:{}", l.file(), l.line()))
                        .unwrap_or_default();
                    panics.push(format!("{message} (at {location})"));
                    true
                })
            });
            if !captured {
                default(info);
            }
        }));
    });
}

/// Removes from this case's caught panics those for which `expected` is true (a fault layer's
/// injected panics), and returns how many it removed.
pub fn forgive_panics(expected: impl Fn(&str) -> bool) -> usize {
    CAUGHT.with(|caught| {
        caught.borrow_mut().as_mut().map_or(0, |panics| {
            let before = panics.len();
            panics.retain(|panic| !expected(panic));
            before - panics.len()
        })
    })
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// How one case went wrong: a class (for counting) and the full story.
struct Failure {
    class: String,
    story: String,
}

/// One builder's run: its cases, what they returned, what went wrong.
#[derive(Default)]
struct Report {
    cases: usize,
    /// Cases with a field that breaks its documented rule.
    invalid: usize,
    built: usize,
    /// Valid configurations of a costly shape already built: validated only.
    validated: usize,
    errors: BTreeMap<&'static str, usize>,
    failures: BTreeMap<String, (usize, String)>,
}

impl Report {
    fn fail(&mut self, failure: Failure) {
        self.failures
            .entry(failure.class)
            .and_modify(|(count, _)| *count += 1)
            .or_insert((1, failure.story));
    }

    fn summary(&self, builder: &str, seed: u64) -> String {
        let mut out = format!(
            "{builder}: {} configurations (seed {seed:#x}), {} with a documented-bad field: {} \
             built and used, {} of an already built shape validated, errors by field {:?}",
            self.cases, self.invalid, self.built, self.validated, self.errors
        );
        for (class, (count, story)) in self.failures.iter().take(SHOWN) {
            let _ = write!(out, "\n  FAILED {count}× [{class}]\n    {story}");
        }
        if self.failures.len() > SHOWN {
            let _ = write!(out, "\n  … and {} more kinds", self.failures.len() - SHOWN);
        }
        out
    }
}

/// A builder under test: how to draw a configuration, which of its fields break their
/// documented rules, and how to build and use it with a context (a runtime, say).
pub struct Builder<X, C> {
    /// The builder's name, for the report.
    pub name: &'static str,
    /// Makes the context a case uses; made anew after a case panicked.
    pub context: fn() -> X,
    /// Draws a configuration.
    pub draw: fn(&mut Draw) -> C,
    /// The fields of a configuration that break their documented rules (cross-field rules
    /// name the field the documentation reports them against).
    pub bad_fields: fn(&C) -> Vec<&'static str>,
    /// Builds the configuration (the error, if refused) and uses what was built.
    pub build_and_use: fn(&X, &C) -> Result<Used, ConfigError>,
    /// The shape of what a configuration builds, when building it is costly (a ring of
    /// thousands of buckets): each costly shape is built and used once per run, and later
    /// configurations of the same shape are only validated.
    pub costly_shape: fn(&C) -> Option<(usize, usize)>,
    /// Validates a configuration without building it.
    pub validate: fn(&C) -> Result<(), ConfigError>,
}

/// Runs `builder` over `RAMPART_FUZZ_CASES` random configurations and panics with a report
/// of every kind of failure: a panic, an error naming a field that is not bad, a valid
/// configuration refused, an invalid one accepted, or a use that went wrong.
pub fn fuzz<X, C: Debug>(builder: &Builder<X, C>) {
    install_panic_hook();
    let cases = env_or("RAMPART_FUZZ_CASES", DEFAULT_CASES);
    let seed = env_or("RAMPART_FUZZ_SEED", DEFAULT_SEED) ^ fnv(builder.name);
    let mut draw = Draw::new(seed);
    let mut context = (builder.context)();
    let mut report = Report::default();
    let mut costly_built = BTreeSet::new();
    for case in 0..cases {
        draw.start();
        let config = (builder.draw)(&mut draw);
        let bad = (builder.bad_fields)(&config);
        CAUGHT.with(|caught| *caught.borrow_mut() = Some(Vec::new()));
        let build = (builder.costly_shape)(&config).is_none_or(|shape| costly_built.insert(shape));
        let result = catch_unwind(AssertUnwindSafe(|| {
            if build {
                (builder.build_and_use)(&context, &config)
            } else {
                (builder.validate)(&config).map(Ok)
            }
        }));
        let panics = CAUGHT.with(|caught| caught.borrow_mut().take().unwrap_or_default());
        report.cases += 1;
        report.invalid += usize::from(!bad.is_empty());
        let story = |what: String| {
            format!(
                "case {case}: {what}\n    config: {config:?}\n    hostile fields: {:?}; documented-bad fields: {bad:?}",
                draw.hostile()
            )
        };
        let outcome = match result {
            Ok(outcome) if panics.is_empty() => outcome,
            _ => {
                let first = panics.first().cloned().unwrap_or_default();
                report.fail(Failure {
                    class: format!("panic: {first}"),
                    story: story(format!("panicked: {panics:?}")),
                });
                context = (builder.context)();
                continue;
            }
        };
        match outcome {
            Err(error) => {
                *report.errors.entry(error.field()).or_default() += 1;
                if !bad.contains(&error.field()) {
                    report.fail(Failure {
                        class: format!("error names `{}`: {}", error.field(), error.rule()),
                        story: story(format!("refused with \"{error}\"")),
                    });
                }
            }
            Ok(used) => {
                if build {
                    report.built += 1;
                } else {
                    report.validated += 1;
                }
                if !bad.is_empty() {
                    report.fail(Failure {
                        class: format!("accepted with bad {bad:?}"),
                        story: story("accepted, though the documentation forbids it".into()),
                    });
                }
                if let Err(what) = used {
                    report.fail(Failure {
                        class: format!("use: {}", what.split(':').next().unwrap_or(&what)),
                        story: story(format!("built, but its use went wrong: {what}")),
                    });
                }
            }
        }
    }
    let summary = report.summary(builder.name, seed);
    println!("{summary}");
    assert!(report.failures.is_empty(), "{summary}");
    assert!(
        report.built > 0 && (report.invalid == 0 || !report.errors.is_empty()),
        "the draws must reach every outcome: {summary}"
    );
}

/// A stable hash of a builder's name, so each builder draws its own sequence.
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A paused runtime replaced after a number of uses, for cases that leave tasks behind (a
/// sampler or heartbeat ends only at its next tick, which may be years away).
pub struct Renewed {
    runtime: RefCell<(tokio::runtime::Runtime, usize)>,
}

/// Uses of a [`Renewed`] runtime before it is replaced.
const USES_PER_RUNTIME: usize = 500;

impl Renewed {
    /// A fresh paused runtime.
    pub fn new() -> Self {
        Self {
            runtime: RefCell::new((paused_runtime(), 0)),
        }
    }

    /// Runs `future` to completion on the runtime, replacing it first if it is worn.
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        let mut runtime = self.runtime.borrow_mut();
        runtime.1 += 1;
        if runtime.1 > USES_PER_RUNTIME {
            *runtime = (paused_runtime(), 1);
        }
        runtime.0.block_on(future)
    }
}

/// A current-thread tokio runtime with paused time: sleeps of any length, even
/// `Duration::MAX`, pass at once.
pub use rampart_testkit::model::paused_runtime;
