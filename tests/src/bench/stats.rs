//! Latency statistics and the figures table every benchmark prints.

use std::time::Duration;

/// Throughput and latency of one benchmark row.
pub struct Stats {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
}

pub fn stats(mut latencies: Vec<Duration>, wall: Duration) -> Stats {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Stats {
        per_second: latencies.len() as f64 / wall.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// Latencies gathered in several batches (rounds), and the time the batches took in all:
/// rows measured in turns, so that the simulator's drift over a run hits them alike.
#[derive(Default)]
pub struct Samples {
    latencies: Vec<Duration>,
    wall: Duration,
    /// Each batch's median, in the order the batches came.
    batch_p50s: Vec<Duration>,
}

impl Samples {
    pub fn add(&mut self, latencies: Vec<Duration>, wall: Duration) {
        if !latencies.is_empty() {
            self.batch_p50s.push(stats(latencies.clone(), wall).p50);
        }
        self.latencies.extend(latencies);
        self.wall += wall;
    }

    /// Operations measured so far.
    pub fn len(&self) -> usize {
        self.latencies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latencies.is_empty()
    }

    pub fn stats(&self) -> Stats {
        stats(self.latencies.clone(), self.wall)
    }

    /// The median over rounds of `floor`'s median in a round over this row's in the same
    /// round, when both have one batch per round. This VM's CPU runs at one of two speeds
    /// about 1.5x apart, for seconds at a time, so the medians of two whole rows can
    /// come from different speeds; two batches of one round, a fraction of a second
    /// apart, nearly always share one.
    pub fn paired_ratio(&self, floor: &Samples) -> Option<f64> {
        let rounds = self.batch_p50s.len();
        if rounds < 3 || rounds != floor.batch_p50s.len() {
            return None;
        }
        let mut ratios: Vec<f64> = floor
            .batch_p50s
            .iter()
            .zip(&self.batch_p50s)
            .map(|(f, r)| ms(*f) / ms(*r))
            .collect();
        ratios.sort_by(f64::total_cmp);
        Some(ratios[rounds / 2])
    }
}

/// [`Samples::paired_ratio`] of `row` against `base` as a factor ("2.31x"), or "-".
pub fn paired(row: &Samples, base: &Samples) -> String {
    ratio_text(row.paired_ratio(base), "x")
}

fn ratio_text(ratio: Option<f64>, unit: &str) -> String {
    ratio.map_or_else(|| "-".to_string(), |r| format!("{r:.2}{unit}"))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A figures table: one row per measurement, each with three ratios to the floor: of
/// rates (signs/s, what a busy server sees), of medians (floor p50 over the row's p50,
/// what one client waits; a tail of slow outliers moves the first, not this), and the
/// paired one ([`Samples::paired_ratio`]: medians compared round by round, which this
/// VM's changes of CPU speed do not skew).
pub struct Table<'a> {
    name_width: usize,
    floor: &'a Samples,
    floor_stats: Stats,
}

impl Table<'_> {
    /// Prints the column headings.
    pub fn start(name_width: usize, floor: &Samples) -> Table<'_> {
        println!(
            "{:<name_width$} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7}",
            "", "signs/s", "p50 ms", "p99 ms", "rate", "p50", "paired"
        );
        Table {
            name_width,
            floor,
            floor_stats: floor.stats(),
        }
    }

    pub fn row(&self, name: &str, samples: &Samples) {
        let s = samples.stats();
        let paired = ratio_text(samples.paired_ratio(self.floor), "");
        println!(
            "{:<width$} {:>9.1} {:>9.2} {:>9.2} {:>7.2} {:>7.2} {:>7}",
            name,
            s.per_second,
            ms(s.p50),
            ms(s.p99),
            s.per_second / self.floor_stats.per_second,
            ms(self.floor_stats.p50) / ms(s.p50),
            paired,
            width = self.name_width
        );
    }
}
