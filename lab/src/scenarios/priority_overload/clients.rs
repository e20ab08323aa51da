//! The client-side figures of the stack whose clients hold a breaker: what the breakers refuse
//! locally, per class, while the server sheds.

use rampart_core::CriticalityClass;

use super::CLASSES;
use super::figures::{BIN, Frame, binned, refused};
use super::load::Request;
use crate::report::StackReport;

/// A bin counts as "the server sheds half" when it refuses at least this share of what reaches
/// it.
const SHEDS_HALF: f64 = 0.5;

/// The client-side figures of the stack whose clients hold a breaker: over the seconds in which
/// the server refuses at least half of what reaches it, the share of critical (critical-plus
/// and critical) and of sheddable (sheddable-plus and sheddable) requests the clients' breakers
/// refused locally; how many such seconds there were; and the per-second local refusal share
/// of each class.
pub(super) fn client_side(
    mut report: StackReport,
    requests: &[Request],
    frame: &Frame<'_>,
) -> StackReport {
    let bins = binned(requests, frame.duration, BIN);
    let critical = |r: &&Request| r.class >= CriticalityClass::Critical.index();
    let (mut shedding_s, mut critical_sent, mut critical_local) = (0_usize, 0_usize, 0_usize);
    let (mut sheddable_sent, mut sheddable_local) = (0_usize, 0_usize);
    for bin in &bins {
        let reached = bin.iter().filter(|r| !r.local).count();
        let shed = bin
            .iter()
            .filter(|r| !r.local && refused(&r.record))
            .count();
        if reached == 0 || (shed as f64) < SHEDS_HALF * reached as f64 {
            continue;
        }
        shedding_s += 1;
        for request in bin {
            let (sent, local) = if critical(request) {
                (&mut critical_sent, &mut critical_local)
            } else {
                (&mut sheddable_sent, &mut sheddable_local)
            };
            *sent += 1;
            *local += usize::from(request.local);
        }
    }
    let share = |hits: usize, of: usize| {
        if of == 0 {
            f64::NAN
        } else {
            hits as f64 / of as f64
        }
    };
    report = report
        .figure("shedding_half_s", shedding_s as f64 * BIN.as_secs_f64())
        .figure(
            "critical_local_refused",
            share(critical_local, critical_sent),
        )
        .figure(
            "sheddable_local_refused",
            share(sheddable_local, sheddable_sent),
        );
    for class in CLASSES {
        let values = bins
            .iter()
            .map(|bin| {
                let of_class: Vec<&&Request> =
                    bin.iter().filter(|r| r.class == class.index()).collect();
                let local = of_class.iter().filter(|r| r.local).count();
                local as f64 / (of_class.len() as f64).max(1.0)
            })
            .collect();
        report = report.series(&format!("local_refused_{}", class.as_str()), values);
    }
    report
}
