//! The process's resident memory, from `/proc/self/status` (Linux).

/// Resident memory in KiB, or `None` where `/proc` has no such figure.
pub fn resident_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Samples of resident memory over a run, one per second or so.
#[derive(Debug, Default)]
pub struct Samples(Vec<(f64, u64)>);

impl Samples {
    /// Records the memory now, `at` seconds into the run.
    pub fn take(&mut self, at: f64) {
        if let Some(kib) = resident_kib() {
            self.0.push((at, kib));
        }
    }

    /// The sample nearest `at` seconds.
    pub fn at(&self, at: f64) -> Option<u64> {
        self.0
            .iter()
            .min_by(|a, b| (a.0 - at).abs().total_cmp(&(b.0 - at).abs()))
            .map(|&(_, kib)| kib)
    }

    /// The highest sample from `from` seconds to `to` seconds.
    pub fn peak(&self, from: f64, to: f64) -> Option<u64> {
        self.0
            .iter()
            .filter(|(at, _)| (from..=to).contains(at))
            .map(|&(_, kib)| kib)
            .max()
    }
}
