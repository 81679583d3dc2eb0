//! Learning curves of a run folder, drawn to `curves.png` with plotters:
//! critic loss, actor and BC loss, mean Q, and the evaluations: return or,
//! when the task has reference returns, normalised score, each with its 95%
//! interval over episodes.

use std::path::Path;

use plotters::prelude::*;

use super::{CURVES_FILE, EVAL_FILE, EvalRow, METRICS_FILE, MetricsRow, read_jsonl};

/// Draws `curves.png` from the run's logs.
pub fn plot_curves(dir: &Path) -> Result<(), String> {
    crate::eval::font::register();
    let metrics: Vec<MetricsRow> = read_jsonl(&dir.join(METRICS_FILE))?;
    let evals: Vec<EvalRow> = read_jsonl(&dir.join(EVAL_FILE))?;
    let path = dir.join(CURVES_FILE);
    let draw = || -> Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(&path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let panels = root.split_evenly((2, 2));
        let steps: Vec<f64> = metrics.iter().map(|r| r.metrics.step as f64).collect();
        let series = |f: fn(&MetricsRow) -> f64| -> Vec<(f64, f64)> {
            let values = metrics.iter().map(|r| drawable(f(r)));
            steps.iter().copied().zip(values).collect()
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
        let (title, marks): (&str, Vec<EvalMark>) = if normalized {
            let score = |e: &EvalRow| e.normalized_score.unwrap_or(f64::NAN);
            let marks = evals.iter().map(|e| EvalMark {
                step: e.step as f64,
                mean: drawable(score(e)),
                interval: e.score_low.zip(e.score_high).map(drawable_pair),
            });
            (
                "evaluation: normalised score (95% interval)",
                marks.collect(),
            )
        } else {
            let marks = evals.iter().map(|e| EvalMark {
                step: e.step as f64,
                mean: drawable(e.mean_return),
                interval: e.return_low.zip(e.return_high).map(drawable_pair),
            });
            let title = if evals.is_empty() {
                "no evaluations"
            } else {
                "evaluation: return (95% interval)"
            };
            (title, marks.collect())
        };
        eval_panel(&panels[3], title, &marks)?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

/// Largest magnitude a value is drawn at: beyond it (no float32 network's
/// metric gets there) the axis range, its padding and the pixel positions
/// would overflow.
const DRAWN_LIMIT: f64 = 1e300;

/// `v` as drawn: clamped to [`DRAWN_LIMIT`]; NaN and infinities stay (the
/// panels leave them out).
fn drawable(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(-DRAWN_LIMIT, DRAWN_LIMIT)
    } else {
        v
    }
}

fn drawable_pair((low, high): (f64, f64)) -> (f64, f64) {
    (drawable(low), drawable(high))
}

/// One curve of a panel: its name, its (x, y) points and its colour.
type Line<'a> = (&'a str, Vec<(f64, f64)>, &'a RGBColor);

/// One evaluation: its update, mean and 95% interval (if logged).
struct EvalMark {
    step: f64,
    mean: f64,
    interval: Option<(f64, f64)>,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// How a panel frames its series.
struct Style {
    /// Room left of the first and right of the last x, as a fraction of the
    /// x range (points at the ends stay whole).
    x_pad: f64,
    /// A legend naming the series.
    legend: bool,
}

const CURVES: Style = Style {
    x_pad: 0.0,
    legend: true,
};
const POINTS: Style = Style {
    x_pad: 0.03,
    legend: false,
};

fn line_panel(area: &Area<'_>, title: &str, lines: &[Line<'_>]) -> Drawn {
    let extent = lines.iter().flat_map(|(_, p, _)| p.iter().copied());
    panel(area, title, extent, CURVES, |chart| {
        for (name, points, color) in lines {
            let color = **color;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color));
            // One logged row is a point, which a line does not show.
            if let [point] = points[..] {
                chart.draw_series(std::iter::once(Circle::new(point, 3, color.filled())))?;
            }
        }
        Ok(())
    })
}

/// The evaluation curve: a line through the means, a dot at each evaluation
/// and a vertical bar over its interval (so that one or two evaluations read
/// as points with their uncertainty, not as a trend).
fn eval_panel(area: &Area<'_>, title: &str, marks: &[EvalMark]) -> Drawn {
    let extent = marks.iter().flat_map(|m| {
        let (low, high) = m.interval.unwrap_or((m.mean, m.mean));
        [(m.step, m.mean), (m.step, low), (m.step, high)]
    });
    panel(area, title, extent, POINTS, |chart| {
        let color = BLACK;
        let bar = color.mix(0.5).stroke_width(2);
        chart.draw_series(marks.iter().filter_map(|m| {
            let (low, high) = m.interval?;
            (low.is_finite() && high.is_finite())
                .then(|| PathElement::new(vec![(m.step, low), (m.step, high)], bar))
        }))?;
        chart.draw_series(LineSeries::new(
            marks.iter().map(|m| (m.step, m.mean)),
            color.stroke_width(2),
        ))?;
        chart.draw_series(
            marks
                .iter()
                .filter(|m| m.mean.is_finite())
                .map(|m| Circle::new((m.step, m.mean), 4, color.filled())),
        )?;
        Ok(())
    })
}

/// One panel: axes ranged over the finite points of `extent` (5% headroom
/// in y, around a flat series 5% of its value or at least 0.5; a single
/// update gets a unit-wide x range), the series `draw` adds,
/// and their legend.
fn panel(
    area: &Area<'_>,
    title: &str,
    extent: impl Iterator<Item = (f64, f64)>,
    style: Style,
    draw: impl FnOnce(&mut Chart<'_, '_>) -> Drawn,
) -> Drawn {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in extent.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        (x0, x1) = (x0 - 0.5, x0 + 0.5);
    }
    // Updates are whole numbers: no decimals unless the range is narrow.
    let decimals = if x1 - x0 >= 10.0 { 0 } else { 1 };
    let x_pad = (x1 - x0) * style.x_pad;
    (x0, x1) = (x0 - x_pad, x1 + x_pad);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y_axis(y0, y1))?;
    chart
        .configure_mesh()
        .x_desc("update")
        .x_label_formatter(&|x| format!("{x:.decimals$}"))
        .draw()?;
    draw(&mut chart)?;
    if style.legend {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    Ok(())
}

/// The y axis over values in [y0, y1]: 5% headroom each side; a flat
/// series (one evaluation, a constant) gets 5% of its value, at least 0.5,
/// so that its tick labels differ.
fn y_axis(y0: f64, y1: f64) -> std::ops::Range<f64> {
    // Finite values near f64's limits would overflow the range and its
    // padding to infinity, on which the axis's tick search never ends.
    let (y0, y1) = (drawable(y0), drawable(y1));
    let flat = (y1 - y0).abs() <= 1e-9 * y0.abs().max(1.0);
    let pad = if flat {
        (y0.abs() * 0.05).max(0.5)
    } else {
        (y1 - y0).abs() * 0.05
    };
    (y0 - pad)..(y1 + pad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_row(step: u64, score: f64, interval: Option<(f64, f64)>) -> EvalRow {
        EvalRow {
            step,
            episodes: 10,
            mean_return: -400.0,
            return_low: Some(-700.0),
            return_high: Some(-100.0),
            normalized_score: Some(score),
            score_low: interval.map(|i| i.0),
            score_high: interval.map(|i| i.1),
            success_rate: None,
        }
    }

    /// Draws curves.png for these evaluations (no metrics rows) and returns its bytes.
    fn curves(evals: &[EvalRow]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let text: String = evals
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        std::fs::write(dir.path().join(EVAL_FILE), text).unwrap();
        plot_curves(dir.path()).unwrap();
        std::fs::read(dir.path().join(CURVES_FILE)).unwrap()
    }

    #[test]
    fn the_evaluation_panel_draws_each_interval() {
        // The middle interval lies inside the range of the means, so both
        // pictures have the same axes and differ only by the bar.
        let rows = |interval| {
            [
                eval_row(1000, 100.0, None),
                eval_row(2000, 80.0, interval),
                eval_row(3000, 0.0, None),
            ]
        };
        let with = curves(&rows(Some((70.0, 90.0))));
        let without = curves(&rows(None));
        assert_eq!(&with[..8], b"\x89PNG\r\n\x1a\n");
        assert_ne!(with, without, "the interval bars must change the picture");
        // A single evaluation, and one whose score is not finite, still draw.
        assert_eq!(
            &curves(&[eval_row(7, 50.0, Some((40.0, 60.0)))])[..4],
            b"\x89PNG"
        );
        assert_eq!(&curves(&[eval_row(7, f64::NAN, None)])[..4], b"\x89PNG");
    }

    #[test]
    fn a_flat_series_gets_a_readable_axis() {
        assert_eq!(y_axis(0.0, 10.0), -0.5..10.5);
        assert_eq!(y_axis(32.0, 32.0), 30.4..33.6);
        assert_eq!(y_axis(0.0, 0.0), -0.5..0.5);
        assert_eq!(y_axis(-100.0, -100.0), -105.0..-95.0);
    }

    #[test]
    fn values_near_the_limits_of_f64_still_draw() {
        // Their range and its padding overflowed to infinity, and plotters'
        // tick search on an infinite axis never ended.
        let axis = y_axis(-1.7e308, 1.7e308);
        assert!(axis.start.is_finite() && axis.end.is_finite(), "{axis:?}");
        let rows = [eval_row(1, 1.7e308, None), eval_row(2, -1.7e308, None)];
        assert_eq!(&curves(&rows)[..4], b"\x89PNG");
        // And in the metrics' line panels.
        let dir = tempfile::tempdir().unwrap();
        let row = |step: u64, loss: f64| MetricsRow {
            metrics: crate::agent::Metrics {
                step,
                critic_loss: loss,
                ..Default::default()
            },
            steps_per_second: 1.0,
        };
        let text: String = [row(1, 1.7e308), row(2, -1.7e308)]
            .iter()
            .map(|r| serde_json::to_string(r).unwrap() + "\n")
            .collect();
        std::fs::write(dir.path().join(METRICS_FILE), text).unwrap();
        plot_curves(dir.path()).unwrap();
    }

    #[test]
    fn a_single_metrics_row_is_drawn_as_points() {
        let draw = |rows: &[(u64, f64)]| {
            let dir = tempfile::tempdir().unwrap();
            let text: String = rows
                .iter()
                .map(|&(step, loss)| {
                    let metrics = crate::agent::Metrics {
                        step,
                        critic_loss: loss,
                        ..Default::default()
                    };
                    let row = MetricsRow {
                        metrics,
                        steps_per_second: 1.0,
                    };
                    serde_json::to_string(&row).unwrap() + "\n"
                })
                .collect();
            std::fs::write(dir.path().join(METRICS_FILE), text).unwrap();
            plot_curves(dir.path()).unwrap();
            std::fs::read(dir.path().join(CURVES_FILE)).unwrap()
        };
        // One row, or the same row twice (a line of no length): the same
        // axes; only the single row's dots tell them apart.
        assert_ne!(draw(&[(5, 1.0)]), draw(&[(5, 1.0), (5, 1.0)]));
    }
}
