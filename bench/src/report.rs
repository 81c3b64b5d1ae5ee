//! The report: every figure, each budget marked met or missed, and the previous run's
//! figures beside the new ones. Written as Markdown (for people) and JSON (for the next run).
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name, used to find the same figure in the previous report.
    pub key: String,
    pub label: String,
    pub value: f64,
    pub unit: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Met,
    Missed,
    NotMeasured,
}

impl Status {
    pub fn of(met: bool) -> Status {
        if met {
            Status::Met
        } else {
            Status::Missed
        }
    }

    fn label(self) -> &'static str {
        match self {
            Status::Met => "**met**",
            Status::Missed => "**missed**",
            Status::NotMeasured => "not measured",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    pub id: String,
    pub measure: String,
    pub budget: String,
    pub figure: String,
    pub status: Status,
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub cores: usize,
    #[serde(default)]
    pub cpu: String,
    #[serde(default)]
    pub commit: String,
    #[serde(default)]
    pub harness_seconds: f64,
    #[serde(default)]
    pub budgets: Vec<Check>,
    #[serde(default)]
    pub figures: Vec<Figure>,
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Report {
    pub fn figure(&mut self, key: &str, label: &str, value: f64, unit: &str) -> f64 {
        self.figures.push(Figure {
            key: key.to_owned(),
            label: label.to_owned(),
            value,
            unit: unit.to_owned(),
        });
        value
    }

    pub fn check(
        &mut self,
        id: &str,
        measure: &str,
        budget: &str,
        figure: String,
        status: Status,
        note: String,
    ) {
        self.budgets.push(Check {
            id: id.to_owned(),
            measure: measure.to_owned(),
            budget: budget.to_owned(),
            figure,
            status,
            note,
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The report of an earlier run, if there is one that parses.
    pub fn load(path: &Path) -> Option<Report> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_markdown(&self, previous: Option<&Report>) -> String {
        let before: HashMap<&str, &Figure> = previous
            .map(|p| p.figures.iter().map(|f| (f.key.as_str(), f)).collect())
            .unwrap_or_default();
        let before_checks: HashMap<&str, &Check> = previous
            .map(|p| p.budgets.iter().map(|c| (c.id.as_str(), c)).collect())
            .unwrap_or_default();
        let mut md = String::new();
        let _ = writeln!(md, "# tidewater: benchmark report\n");
        let _ = writeln!(
            md,
            "Run {} on {} cores ({}), at commit `{}` (the working tree may hold more); the harness \
             took {:.0} s. Written by `make bench` (`bench/`); every figure of the previous run is shown \
             beside the new one.\n",
            self.date, self.cores, self.cpu, self.commit, self.harness_seconds
        );
        match previous {
            Some(p) => {
                let _ = writeln!(
                    md,
                    "Previous run: {} on {} cores, commit `{}`.\n",
                    p.date, p.cores, p.commit
                );
            }
            None => {
                let _ = writeln!(md, "No previous run was found.\n");
            }
        }

        let _ = writeln!(md, "## Budgets\n");
        let _ = writeln!(md, "| # | measure | budget | figure | status | previous |");
        let _ = writeln!(md, "|---|---|---|---|---|---|");
        for check in &self.budgets {
            let was = before_checks
                .get(check.id.as_str())
                .map(|c| format!("{} ({})", c.figure, c.status.label().trim_matches('*')))
                .unwrap_or_else(|| "–".to_owned());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                check.id,
                check.measure,
                check.budget,
                check.figure,
                check.status.label(),
                was
            );
        }
        let notes: Vec<&Check> = self.budgets.iter().filter(|c| !c.note.is_empty()).collect();
        if !notes.is_empty() {
            let _ = writeln!(md);
            for check in notes {
                let _ = writeln!(md, "- **{}**: {}", check.id, check.note);
            }
        }

        let _ = writeln!(md, "\n## Figures\n");
        let _ = writeln!(md, "| figure | value | previous | change |");
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for figure in &self.figures {
            let (was, change) = match before.get(figure.key.as_str()) {
                Some(old) => (
                    format_value(old.value, &old.unit),
                    change(old.value, figure.value),
                ),
                None => ("–".to_owned(), String::new()),
            };
            let _ = writeln!(
                md,
                "| {} <br>`{}` | {} | {} | {} |",
                figure.label,
                figure.key,
                format_value(figure.value, &figure.unit),
                was,
                change
            );
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        md
    }
}

pub fn format_value(value: f64, unit: &str) -> String {
    let number = if value.is_nan() {
        "–".to_owned()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    if unit.is_empty() {
        number
    } else {
        format!("{number} {unit}")
    }
}

fn change(old: f64, new: f64) -> String {
    if old == new {
        "=".to_owned()
    } else if old == 0.0 || old.is_nan() || new.is_nan() {
        "≠".to_owned()
    } else {
        format!("{:+.0}%", (new - old) / old.abs() * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_figures_appear_beside_the_new_ones() {
        let mut old = Report::default();
        old.figure("p1.load-context.init_ms", "cold init", 10.0, "ms");
        let mut new = Report::default();
        new.figure("p1.load-context.init_ms", "cold init", 12.0, "ms");
        let md = new.to_markdown(Some(&old));
        assert!(md.contains("| 12 ms | 10 ms | +20% |"), "{md}");
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let mut report = Report::default();
        report.check(
            "P3",
            "capacity",
            "≤ 1.5 RCU",
            "1.5 RCU".into(),
            Status::Met,
            String::new(),
        );
        let back: Report = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(back.budgets[0].status, Status::Met);
    }
}
