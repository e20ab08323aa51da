//! [`PerStripe`]: one value per stripe of threads, each on cache lines of its own.

use std::fmt;

use crate::Stripes;
use crate::sync::Padded;

/// One `T` per stripe of threads (see [`Stripes::thread_stripe`]), each on 128 bytes of its
/// own: state that every request writes, kept so that requests running at the same time on
/// different CPUs write different cache lines. What is written to one stripe is read back from
/// all of them ([`iter`](Self::iter)) or from the stripe recorded ([`get`](Self::get)), never
/// assumed to be the calling thread's next time: a thread may move to another CPU.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use rampart_core::{PerStripe, Stripes};
///
/// let arrivals = PerStripe::new(Stripes::Auto, || AtomicU64::new(0));
/// arrivals.here().fetch_add(1, Ordering::Relaxed);
/// let total: u64 = arrivals.iter().map(|count| count.load(Ordering::Relaxed)).sum();
/// assert_eq!(total, 1);
/// ```
pub struct PerStripe<T> {
    /// A power of two of them.
    slots: Box<[Padded<T>]>,
}

impl<T> PerStripe<T> {
    /// One value made by `make` per stripe of `stripes` (rounded up to a power of two, at
    /// least one).
    pub fn new(stripes: Stripes, mut make: impl FnMut() -> T) -> Self {
        let stripes = stripes.count().max(1).next_power_of_two();
        Self {
            slots: (0..stripes).map(|_| Padded(make())).collect(),
        }
    }

    /// The calling thread's stripe number.
    #[inline]
    pub fn stripe(&self) -> usize {
        Stripes::thread_stripe(self.slots.len())
    }

    /// The calling thread's value.
    #[inline]
    pub fn here(&self) -> &T {
        &self.slots[self.stripe()].0
    }

    /// The value of stripe `stripe` (a number [`stripe`](Self::stripe) gave; beyond the last
    /// stripe, counted round again).
    #[inline]
    pub fn get(&self, stripe: usize) -> &T {
        &self.slots[stripe & (self.slots.len() - 1)].0
    }

    /// Every stripe's value.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().map(|slot| &slot.0)
    }

    /// The number of stripes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Never: there is at least one stripe.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl<T: fmt::Debug> fmt::Debug for PerStripe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(all(test, not(rampart_loom)))]
mod tests {
    use super::*;

    #[test]
    fn stripes_round_up_to_a_power_of_two_and_numbers_wrap_round() {
        for (asked, made) in [(0, 1), (1, 1), (3, 4), (8, 8)] {
            let numbered = {
                let mut next = 0;
                PerStripe::new(Stripes::Exactly(asked), || {
                    next += 1;
                    next
                })
            };
            assert_eq!(numbered.len(), made, "{asked}");
            assert_eq!(
                numbered.iter().copied().collect::<Vec<_>>(),
                (1..=made).collect::<Vec<_>>()
            );
            assert_eq!(*numbered.get(made), 1, "counted round again");
            assert!(numbered.stripe() < made);
            assert_eq!(numbered.here(), numbered.get(numbered.stripe()));
        }
    }

    #[test]
    fn each_value_sits_on_its_own_128_bytes() {
        let values = PerStripe::new(Stripes::Exactly(4), || 0_u8);
        let addresses: Vec<usize> = values
            .iter()
            .map(|v| std::ptr::from_ref(v) as usize)
            .collect();
        assert!(
            addresses.windows(2).all(|pair| pair[1] - pair[0] >= 128),
            "{addresses:?}"
        );
    }
}
