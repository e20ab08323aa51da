//! rampart's series in a Prometheus text exposition, summed by name and labels.

use std::collections::{BTreeMap, BTreeSet};

/// One line: `name{label="value",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The `rampart_*` samples of one scrape.
#[derive(Debug)]
pub struct Exposition(Vec<Sample>);

impl Exposition {
    /// Parses the `rampart_*` lines of `text`.
    ///
    /// # Panics
    ///
    /// On a line that is not `series value`.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| line.starts_with("rampart_"))
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("series and value");
                let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
                let labels = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once('=').expect("key=value");
                        (key.to_owned(), value.trim_matches('"').to_owned())
                    })
                    .collect();
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().expect("a number"),
                }
            })
            .collect();
        Self(samples)
    }

    /// Whether a series named `name` carries exactly the labels `labels` (whatever their
    /// values).
    pub fn exposes(&self, name: &str, labels: &[&str]) -> bool {
        let expected: BTreeSet<&str> = labels.iter().copied().collect();
        self.0.iter().any(|s| {
            s.name == name
                && s.labels.keys().map(String::as_str).collect::<BTreeSet<_>>() == expected
        })
    }

    /// The sum of the series named `name` that carry all of `labels`, as an integer count.
    ///
    /// # Panics
    ///
    /// If the sum is not a whole number.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let sum = self.sum(name, labels);
        assert!(
            sum.fract() == 0.0 && sum >= 0.0,
            "{name} {labels:?} = {sum}"
        );
        sum as u64
    }

    /// The sum of the series named `name` that carry all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}
