//! Learning curves of a run folder, drawn to `curves.png` with plotters:
//! critic loss, actor and BC loss, mean Q, and evaluation return with its 95%
//! interval (or the normalised score when the task has reference returns).

use std::path::Path;

use plotters::prelude::*;

use super::{CURVES_FILE, EVAL_FILE, EvalRow, METRICS_FILE, MetricsRow, read_jsonl};

/// Draws `curves.png` from the run's logs.
pub fn plot_curves(dir: &Path) -> Result<(), String> {
    let metrics: Vec<MetricsRow> = read_jsonl(&dir.join(METRICS_FILE))?;
    let evals: Vec<EvalRow> = read_jsonl(&dir.join(EVAL_FILE))?;
    let path = dir.join(CURVES_FILE);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((2, 2));
        let steps: Vec<f64> = metrics.iter().map(|r| r.metrics.step as f64).collect();
        let series = |f: fn(&MetricsRow) -> f64| -> Vec<(f64, f64)> {
            steps.iter().copied().zip(metrics.iter().map(f)).collect()
        };
        line_panel(
            &panels[0],
            "critic loss",
            &[("critic", series(|r| r.metrics.critic_loss), &RED)],
        )?;
        line_panel(
            &panels[1],
            "actor loss",
            &[
                ("actor", series(|r| r.metrics.actor_loss), &BLUE),
                ("bc", series(|r| r.metrics.bc_loss), &GREEN),
            ],
        )?;
        line_panel(
            &panels[2],
            "Q (dataset chunks) and target",
            &[
                ("Q1", series(|r| r.metrics.q_mean), &MAGENTA),
                ("target", series(|r| r.metrics.target_mean), &CYAN),
            ],
        )?;
        let normalized = evals.iter().all(|e| e.normalized_score.is_some()) && !evals.is_empty();
        let (title, points): (&str, Vec<(f64, f64)>) = if normalized {
            (
                "evaluation: normalised score",
                evals
                    .iter()
                    .map(|e| (e.step as f64, e.normalized_score.unwrap_or(0.0)))
                    .collect(),
            )
        } else {
            (
                "evaluation: return",
                evals
                    .iter()
                    .map(|e| (e.step as f64, e.mean_return))
                    .collect(),
            )
        };
        line_panel(&panels[3], title, &[("eval", points, &BLACK)])?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

/// One curve of a panel: its name, its (x, y) points and its colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, &'a RGBColor);

fn line_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    let points = lines
        .iter()
        .flat_map(|(_, p, _)| p.iter())
        .filter(|(_, y)| y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0).abs() * 0.05).max(1e-6);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart.configure_mesh().x_desc("update").draw()?;
    for (name, points, color) in lines {
        let color = **color;
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}
