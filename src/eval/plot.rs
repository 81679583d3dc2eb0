//! A picture of an evaluation's episodes (`chunkql eval --plot FILE.png`),
//! drawn with plotters: for a maze, its walls and goal from above with each
//! episode's path; for the pendulum, its angle and torque over time;
//! otherwise every observation and action dimension over time. A ring marks
//! each step at which the policy was asked for a new chunk, so that the
//! chunk execution (`execute` steps per chunk) can be seen.

use std::f64::consts::PI;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::Recording;
use crate::env::{GOAL_RADIUS, MazeLayout, Scene};

#[cfg(test)]
#[path = "plot_tests.rs"]
mod tests;

/// Colour of a maze's wall cells.
pub const WALL: RGBColor = RGBColor(110, 110, 110);
/// Colour of a maze's goal disk.
pub const GOAL: RGBColor = RGBColor(180, 235, 180);
/// Most dimensions the signal picture draws (one panel each).
const MAX_PANELS: usize = 16;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// Draws `recording`'s episodes to the PNG file `path` (its scene decides
/// the picture; see the module doc).
pub fn plot_rollouts(recording: &Recording, path: &Path) -> Result<(), String> {
    super::font::register();
    let drawn = match recording.scene {
        Scene::Maze(layout) => maze_picture(recording, layout, path),
        Scene::Pendulum => pendulum_picture(recording, path),
        Scene::Signals => signals_picture(recording, path),
    };
    drawn.map_err(|e| format!("cannot draw {}: {e}", path.display()))
}

/// Pixels per maze cell: at least 64, more for a small maze (the picture
/// is at least 640 pixels wide).
pub fn cell_pixels(layout: MazeLayout) -> u32 {
    let (_, cols) = layout.shape();
    64.max(640 / cols as u32)
}

/// Margin around a maze picture's grid, and the heights of its caption
/// (top) and note (bottom), in pixels.
const MARGIN: u32 = 16;
const CAPTION: u32 = 40;
const NOTE: u32 = 28;

fn maze_picture(rec: &Recording, layout: MazeLayout, path: &Path) -> Drawn {
    let (rows, cols) = layout.shape();
    let px = cell_pixels(layout);
    let size = (
        cols as u32 * px + 2 * MARGIN,
        rows as u32 * px + 2 * MARGIN + CAPTION + NOTE,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, rest) = root.split_vertically(CAPTION);
    let (grid, bottom) = rest.split_vertically(rows as u32 * px + 2 * MARGIN);
    let reached = rec.rollouts.iter().filter(|r| r.success).count();
    top.titled(
        &format!(
            "{}: {reached} of {} episode{} reached the goal",
            rec.env,
            rec.rollouts.len(),
            plural(rec.rollouts.len())
        ),
        ("sans-serif", 22),
    )?;
    bottom.titled(&ring_note(rec), ("sans-serif", 16))?;
    // x = column, y = -row: the maze reads as its layout is written.
    let x = -0.5..cols as f64 - 0.5;
    let y = -(rows as f64 - 0.5)..0.5;
    let mut chart = ChartBuilder::on(&grid)
        .margin(MARGIN)
        .build_cartesian_2d(x, y)?;
    let walls = (0..rows).flat_map(|r| (0..cols).map(move |c| (r, c)));
    chart.draw_series(walls.filter(|&cell| layout.is_wall(cell)).map(|(r, c)| {
        let (r, c) = (r as f64, c as f64);
        Rectangle::new([(c - 0.5, -r + 0.5), (c + 0.5, -r - 0.5)], WALL.filled())
    }))?;
    let (gr, gc) = layout.goal();
    let disk = (0..64).map(|i| {
        let angle = 2.0 * PI * i as f64 / 64.0;
        (
            gc as f64 + GOAL_RADIUS * angle.cos(),
            -(gr as f64) + GOAL_RADIUS * angle.sin(),
        )
    });
    chart.draw_series(std::iter::once(Polygon::new(
        disk.collect::<Vec<_>>(),
        GOAL.filled(),
    )))?;
    let o = rec.obs_dim;
    for (k, rollout) in rec.rollouts.iter().enumerate() {
        let color = episode_color(k);
        let at = |t: usize| {
            let obs = &rollout.observations[t * o..];
            (obs[1] as f64, -(obs[0] as f64))
        };
        let steps = rec.steps(k);
        chart.draw_series(LineSeries::new((0..=steps).map(at), color.stroke_width(2)))?;
        chart.draw_series(ring_steps(rec, steps).map(|t| Circle::new(at(t), 4, color)))?;
        chart.draw_series(std::iter::once(Circle::new(at(0), 6, color.filled())))?;
    }
    root.present()?;
    Ok(())
}

fn pendulum_picture(rec: &Recording, path: &Path) -> Drawn {
    let root = BitMapBackend::new(path, (1200, 860)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, bottom) = root.split_vertically(860 - NOTE);
    bottom.titled(&ring_note(rec), ("sans-serif", 16))?;
    let panels = main.split_evenly((2, 1));
    let angles = observation_series(rec, |obs| angle(obs[0], obs[1]));
    let torques = action_series(rec, |action| action[0] as f64);
    time_panel(
        &panels[0],
        &format!(
            "{}: angle (rad, 0 = upright), {} episode{}",
            rec.env,
            rec.rollouts.len(),
            plural(rec.rollouts.len())
        ),
        rec,
        &angles,
        true,
    )?;
    time_panel(&panels[1], "torque", rec, &torques, false)?;
    root.present()?;
    Ok(())
}

fn signals_picture(rec: &Recording, path: &Path) -> Drawn {
    let dims = rec.obs_dim + rec.act_dim;
    let shown = dims.min(MAX_PANELS);
    let cols = (shown as f64).sqrt().ceil() as usize;
    let rows = shown.div_ceil(cols);
    let size = (cols as u32 * 420, rows as u32 * 280 + NOTE);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, bottom) = root.split_vertically(size.1 - NOTE);
    let mut note = ring_note(rec);
    if shown < dims {
        note = format!("the first {shown} of {dims} dimensions; {note}");
    }
    bottom.titled(&note, ("sans-serif", 16))?;
    let panels = main.split_evenly((rows, cols));
    for (d, area) in panels.iter().enumerate().take(shown) {
        let (title, series) = match d.checked_sub(rec.obs_dim) {
            None => (
                format!("{}: observation {d}", rec.env),
                observation_series(rec, |obs| obs[d] as f64),
            ),
            Some(a) => (
                format!("{}: action {a}", rec.env),
                action_series(rec, |action| action[a] as f64),
            ),
        };
        time_panel(area, &title, rec, &series, false)?;
    }
    root.present()?;
    Ok(())
}

/// Per episode, `value` of each observation `[O]` (T + 1 values).
fn observation_series(rec: &Recording, value: impl Fn(&[f32]) -> f64) -> Vec<Vec<f64>> {
    let per_episode = |r: &super::Rollout| {
        let rows = r.observations.chunks_exact(rec.obs_dim);
        rows.map(&value).collect()
    };
    rec.rollouts.iter().map(per_episode).collect()
}

/// Per episode, `value` of each action `[A]` (T values).
fn action_series(rec: &Recording, value: impl Fn(&[f32]) -> f64) -> Vec<Vec<f64>> {
    let per_episode = |r: &super::Rollout| {
        let rows = r.actions.chunks_exact(rec.act_dim);
        rows.map(&value).collect()
    };
    rec.rollouts.iter().map(per_episode).collect()
}

/// One panel of values over steps, one line per episode (`series[k][t]`,
/// value after t steps or action of step t) with a ring at each chunk
/// start. `wraps`: the values are angles in (-pi, pi], broken where they
/// wrap around.
fn time_panel(
    area: &Area<'_>,
    title: &str,
    rec: &Recording,
    series: &[Vec<f64>],
    wraps: bool,
) -> Drawn {
    let finite = series.iter().flatten().copied().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (low, high) = match (low.is_finite(), high > low) {
        (false, _) => (-1.0, 1.0),
        (true, false) => (low - 0.5, high + 0.5),
        (true, true) => (low - 0.05 * (high - low), high + 0.05 * (high - low)),
    };
    let steps = series.iter().map(Vec::len).max().unwrap_or(1).max(2);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..(steps - 1) as f64, low..high)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    for (k, values) in series.iter().enumerate() {
        let color = episode_color(k);
        let segments = match wraps {
            true => angle_segments(values),
            false => vec![(0..values.len()).map(|t| (t as f64, values[t])).collect()],
        };
        for segment in segments {
            chart.draw_series(LineSeries::new(segment, color.stroke_width(2)))?;
        }
        // At the chunk starts among the episode's steps: an observation
        // series has one value more (the last state), where no chunk starts.
        let starts = ring_steps(rec, rec.steps(k));
        chart.draw_series(starts.map(|t| Circle::new((t as f64, values[t]), 3, color)))?;
    }
    Ok(())
}

/// The pendulum's angle in (-pi, pi] from its observation's `cos` and `sin`.
pub fn angle(cos: f32, sin: f32) -> f64 {
    (sin as f64).atan2(cos as f64)
}

/// `(step, angle)` lines of an angle series, broken where consecutive
/// values are more than pi apart (the angle wrapped around past +-pi), so
/// that no line crosses the panel.
pub fn angle_segments(angles: &[f64]) -> Vec<Vec<(f64, f64)>> {
    let mut segments: Vec<Vec<(f64, f64)>> = vec![];
    for (t, &a) in angles.iter().enumerate() {
        match segments.last_mut() {
            Some(last) if (a - last.last().expect("non-empty").1).abs() <= PI => {
                last.push((t as f64, a))
            }
            _ => segments.push(vec![(t as f64, a)]),
        }
    }
    segments
}

/// The steps that get a ring: each chunk start, none when every step is
/// one (`execute = 1`: rings would only thicken the line).
pub fn ring_steps(rec: &Recording, steps: usize) -> impl Iterator<Item = usize> {
    let steps = if rec.execute > 1 { steps } else { 0 };
    rec.chunk_starts(steps)
}

fn ring_note(rec: &Recording) -> String {
    match rec.execute {
        1 => "the policy was asked for a new chunk at every step (execute = 1): no rings".into(),
        e => format!("rings: the policy was asked for a new chunk (every {e} steps)"),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Episode k's colour (plotters' 99-colour palette).
fn episode_color(k: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(k).rgb();
    RGBColor(r, g, b)
}
