//! The arithmetic of weighted fair queuing, shared by the kernel's
//! scheduler (`kernel/src/sched`) and tested here.
//!
//! Times are in TSC ticks; a thread's virtual runtime grows by its CPU time
//! scaled by `DEFAULT_WEIGHT / weight`.

/// Smallest thread weight.
pub const MIN_WEIGHT: u32 = 1;
/// Largest thread weight.
pub const MAX_WEIGHT: u32 = 1024;
/// Weight of a new thread, and the weight at which virtual time runs at the
/// speed of real time.
pub const DEFAULT_WEIGHT: u32 = 16;

/// Virtual time for `delta` ticks of CPU time at `weight` (0 is taken as 1).
pub fn vruntime_delta(delta: u64, weight: u32) -> u64 {
    let scaled = delta as u128 * DEFAULT_WEIGHT as u128 / weight.max(1) as u128;
    scaled.min(u64::MAX as u128) as u64
}

/// The slice of a thread of weight `mine` when the runnable threads of its
/// CPU weigh `total` (its own included): the latency target shared by
/// weight, at least the minimum granularity.
pub fn slice(latency: u64, min_granularity: u64, mine: u64, total: u64) -> u64 {
    let share = latency as u128 * mine as u128 / total.max(1) as u128;
    (share.min(u64::MAX as u128) as u64).max(min_granularity)
}

/// Where a woken thread starts in virtual time: where it was, but no more
/// than `credit` before the queue's minimum.
pub fn place_woken(vruntime: u64, min_vruntime: u64, credit: u64) -> u64 {
    vruntime.max(min_vruntime.saturating_sub(credit))
}

/// Carries a virtual runtime from a queue whose minimum is `from_min` to
/// one whose minimum is `to_min`, keeping its distance ahead of the minimum.
pub fn migrate(vruntime: u64, from_min: u64, to_min: u64) -> u64 {
    vruntime.saturating_sub(from_min).saturating_add(to_min)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_weight_runs_at_real_speed() {
        assert_eq!(vruntime_delta(1000, DEFAULT_WEIGHT), 1000);
        assert_eq!(vruntime_delta(1000, 3 * DEFAULT_WEIGHT), 333);
        assert_eq!(vruntime_delta(u64::MAX, MIN_WEIGHT), u64::MAX);
        assert_eq!(vruntime_delta(10, 0), 160);
    }

    #[test]
    fn slices_share_the_latency_by_weight() {
        assert_eq!(slice(12_000, 1_500, 16, 32), 6_000);
        assert_eq!(slice(12_000, 1_500, 48, 64), 9_000);
        assert_eq!(slice(12_000, 1_500, 1, 64), 1_500);
        assert_eq!(slice(12_000, 1_500, 16, 0), 192_000);
    }

    proptest! {
        /// Two threads that each ran until their virtual runtimes met got
        /// CPU time in the ratio of their weights (within rounding).
        #[test]
        fn equal_virtual_time_means_cpu_in_weight_ratio(w1 in 1u32..=1024, w2 in 1u32..=1024, t in 1_000_000u64..1_000_000_000) {
            let v = vruntime_delta(t, w1);
            // CPU time thread 2 needs for the same virtual time.
            let t2 = (v as u128 * w2 as u128 / DEFAULT_WEIGHT as u128) as u64;
            let expected = t as u128 * w2 as u128 / w1 as u128;
            let err = (t2 as i128 - expected as i128).unsigned_abs();
            // Rounding loses less than one unit of virtual time.
            prop_assert!(err <= w2 as u128 / DEFAULT_WEIGHT as u128 + 2);
        }

        #[test]
        fn slice_is_at_least_the_granularity(lat in 0u64..1 << 40, g in 0u64..1 << 30, mine in 1u64..1024, extra in 0u64..1 << 20) {
            let s = slice(lat, g, mine, mine + extra);
            prop_assert!(s >= g);
            prop_assert!(s <= lat.max(g));
        }

        #[test]
        fn a_woken_thread_never_goes_back_and_gets_at_most_the_credit(v in any::<u64>(), min in any::<u64>(), credit in any::<u64>()) {
            let p = place_woken(v, min, credit);
            prop_assert!(p >= v);
            prop_assert!(p >= min.saturating_sub(credit));
        }

        #[test]
        fn migration_keeps_the_lead(lead in 0u64..1 << 40, from in 0u64..1 << 50, to in 0u64..1 << 50) {
            prop_assert_eq!(migrate(from + lead, from, to), to + lead);
        }
    }
}
