//! [`Switch`]: an atomic on/off state whose every change is seen by exactly one caller.

use std::sync::atomic::{AtomicBool, Ordering};

/// An on/off state shared between threads, each change of which exactly one caller sees: the
/// one whose [`turn_on`](Self::turn_on) or [`turn_off`](Self::turn_off) made it.
///
/// Layers use it to report a transition once, never once per request (a limiter starting to
/// shed, a retry budget running dry), and to let one caller claim a one-time task (registering
/// gauges with the background refresher). A call that changes nothing costs one relaxed load;
/// the switch orders no other memory.
///
/// ```
/// use rampart_core::Switch;
///
/// let shedding = Switch::new(false);
/// assert!(shedding.turn_on()); // this call started shedding: report it
/// assert!(!shedding.turn_on()); // already shedding: nothing to report
/// assert!(shedding.is_on());
/// assert!(shedding.turn_off());
/// assert!(!shedding.turn_off());
/// ```
#[derive(Debug, Default)]
pub struct Switch(AtomicBool);

impl Switch {
    /// A switch that starts on (`true`) or off.
    pub const fn new(on: bool) -> Self {
        Self(AtomicBool::new(on))
    }

    /// Whether the switch is on.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Turns the switch on: true when this call changed it (it was off).
    #[inline]
    pub fn turn_on(&self) -> bool {
        !self.is_on() && !self.0.swap(true, Ordering::Relaxed)
    }

    /// Turns the switch off: true when this call changed it (it was on).
    #[inline]
    pub fn turn_off(&self) -> bool {
        self.is_on() && self.0.swap(false, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn each_change_is_seen_by_exactly_one_of_many_threads() {
        let switch = Arc::new(Switch::new(true));
        let changes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (switch, changes) = (Arc::clone(&switch), Arc::clone(&changes));
                std::thread::spawn(move || {
                    if switch.turn_off() {
                        changes.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(changes.load(Ordering::Relaxed), 1);
        assert!(!switch.is_on());
    }

    #[test]
    fn the_default_is_off() {
        assert!(!Switch::default().is_on());
        assert!(Switch::default().turn_on());
    }
}
