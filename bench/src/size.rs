//! P5 size: the arm64 `bootstrap` each function ships, as cargo lambda builds it.
use crate::{Options, MB};
use crate::report::{Report, Status};

pub(crate) fn sizes(options: &Options, report: &mut Report, functions: &[(String, bool)]) {
    let mut worst: Option<(f64, String)> = None;
    let mut missing = Vec::new();
    for (name, http) in functions {
        if let Ok(meta) = std::fs::metadata(options.release_dir.join(name)) {
            report.figure(
                &format!("p5.{name}.x86_64_mb"),
                &format!("{name}: x86_64 release binary"),
                meta.len() as f64 / MB,
                "MB",
            );
        }
        match std::fs::metadata(options.lambda_dir.join(name).join("bootstrap")) {
            Ok(meta) => {
                let mb = meta.len() as f64 / MB;
                report.figure(
                    &format!("p5.{name}.bootstrap_mb"),
                    &format!("{name}: arm64 bootstrap (stripped)"),
                    mb,
                    "MB",
                );
                if *http && worst.as_ref().is_none_or(|(w, _)| mb > *w) {
                    worst = Some((mb, name.clone()));
                }
            }
            Err(_) => missing.push(name.clone()),
        }
    }
    let (status, figure) = match worst {
        Some((mb, name)) if missing.is_empty() => (
            Status::of(mb <= 8.0),
            format!("largest {mb:.2} MB ({name})"),
        ),
        Some((mb, name)) => (
            Status::NotMeasured,
            format!(
                "largest {mb:.2} MB ({name}); no bootstrap for {}",
                missing.join(", ")
            ),
        ),
        None => (
            Status::NotMeasured,
            format!(
                "no bootstrap under {}; run `make bench`",
                options.lambda_dir.display()
            ),
        ),
    };
    report.check(
        "P5-size",
        "stripped arm64 bootstrap of each HTTP function (`cargo lambda build --release --arm64`)",
        "≤ 8 MB (10⁶ bytes)",
        figure,
        status,
        String::new(),
    );
}
