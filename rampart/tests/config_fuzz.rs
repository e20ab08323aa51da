//! Every public configuration and builder of the workspace, fuzzed: random configurations
//! (NaN, infinities, negatives, zero, tiny values, `Duration::MAX`, the integer maxima and
//! the edges of each documented range, mixed with ordinary values) must each give a
//! `ConfigError` naming a field that breaks its documented rule, or build something that then
//! works when used (with a manual clock or a paused runtime). Never a panic.
//!
//! The oracle is each builder's documentation: a model of its rules says which fields of a
//! configuration are bad, and a refusal must name one of them (a configuration with none must
//! build). What builds is then used briefly (calls, records, acquisitions, withdrawals,
//! waits) and must behave sanely: counts exact, probabilities in [0, 1], waits within their
//! bounds. A costly shape (a ring of thousands of buckets) is built and used once per run;
//! later configurations of that shape are validated only.
//!
//! 100 000 configurations per builder; `RAMPART_FUZZ_CASES` sets another number and
//! `RAMPART_FUZZ_SEED` another seed (each builder's report, printed with `--nocapture` or on
//! failure, gives the seed it used).

#[allow(unreachable_pub)]
mod config_fuzz {
    pub mod balancer;
    pub mod breaker;
    pub mod core;
    pub mod fault;
    pub mod harness;
    pub mod hostile;
    pub mod http;
    pub mod ratelimit;
    pub mod retry;
}

use config_fuzz::harness::fuzz;
use config_fuzz::{balancer, breaker, core, fault, http, ratelimit, retry};

#[test]
fn window_configs_are_refused_by_field_or_work() {
    fuzz(&core::WINDOW);
}

#[test]
fn spanning_windows_are_refused_by_field_or_work() {
    fuzz(&core::SPANNING);
}

#[test]
fn keyed_group_bounds_are_refused_by_field_or_work() {
    fuzz(&core::GROUP);
}

#[test]
fn breaker_configs_are_refused_by_field_or_work() {
    fuzz(&breaker::CONFIG);
}

#[test]
fn breaker_group_settings_are_refused_by_field_or_work() {
    fuzz(&breaker::GROUP);
}

#[test]
fn limiter_configs_are_refused_by_field_or_work() {
    fuzz(&ratelimit::CONFIG);
}

#[test]
fn limiter_group_settings_are_refused_by_field_or_work() {
    fuzz(&ratelimit::GROUP);
}

#[test]
fn cpu_sampler_decays_are_refused_by_field_or_work() {
    fuzz(&ratelimit::SAMPLER);
}

#[test]
fn manual_cpu_readings_are_clamped() {
    fuzz(&ratelimit::MANUAL_CPU);
}

#[test]
fn system_cpu_sampling_settings_are_refused_by_field_or_work() {
    fuzz(&ratelimit::SYSTEM_CPU);
}

#[test]
fn delay_probe_intervals_are_refused_by_field_or_work() {
    fuzz(&ratelimit::DELAY_PROBE);
}

#[test]
fn spawned_sampler_settings_are_refused_by_field_or_work() {
    fuzz(&ratelimit::SPAWN_SAMPLER);
}

#[test]
fn backoffs_are_refused_by_field_or_work() {
    fuzz(&retry::BACKOFF);
}

#[test]
fn retry_configs_are_refused_by_field_or_work() {
    fuzz(&retry::CONFIG);
}

#[test]
fn ratio_budget_configs_are_refused_by_field_or_work() {
    fuzz(&retry::RATIO);
}

#[test]
fn token_budget_configs_are_refused_by_field_or_work() {
    fuzz(&retry::TOKEN);
}

#[test]
fn balancer_configs_are_refused_by_field_or_work() {
    fuzz(&balancer::CONFIG);
}

#[test]
fn distributions_are_refused_by_field_or_work() {
    fuzz(&fault::DISTRIBUTION);
}

#[test]
fn log_normal_p99_distributions_are_refused_by_field_or_work() {
    fuzz(&fault::LOG_NORMAL_P99);
}

#[test]
fn fault_configs_are_refused_by_field_or_work() {
    fuzz(&fault::CONFIG);
}

#[test]
fn fault_handle_settings_are_refused_by_field_or_work() {
    fuzz(&fault::HANDLE_SET);
}

#[test]
fn sim_configs_are_refused_by_field_or_work() {
    fuzz(&fault::SIM);
}

#[test]
fn sim_runtime_configs_are_refused_by_field_or_work() {
    fuzz(&fault::RUNTIME);
}

#[test]
fn error_status_settings_work() {
    fuzz(&http::ERROR_STATUS);
}
