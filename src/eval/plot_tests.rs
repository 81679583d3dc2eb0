//! The rollout pictures: the pendulum's angle by hand, and the PNG files
//! read back pixel by pixel (walls, goal and paths where the layout puts
//! them).

use std::f64::consts::PI;

use image::RgbImage;

use super::*;
use crate::eval::{Recording, Rollout};

fn read(path: &Path) -> RgbImage {
    image::open(path).expect("a PNG").to_rgb8()
}

fn count(img: &RgbImage, color: RGBColor) -> usize {
    img.pixels()
        .filter(|p| p.0 == [color.0, color.1, color.2])
        .count()
}

fn recording(scene: Scene, obs_dim: usize, act_dim: usize, rollouts: Vec<Rollout>) -> Recording {
    Recording {
        env: "test".into(),
        scene,
        obs_dim,
        act_dim,
        execute: 4,
        rollouts,
    }
}

#[test]
fn the_pendulum_angle_is_read_from_cos_and_sin() {
    assert_eq!(angle(1.0, 0.0), 0.0);
    assert!((angle(0.0, 1.0) - PI / 2.0).abs() < 1e-12);
    assert!((angle(-1.0, 0.0) - PI).abs() < 1e-12);
    assert!((angle(0.0, -1.0) + PI / 2.0).abs() < 1e-12);
}

#[test]
fn an_angle_line_breaks_where_it_wraps() {
    // 3.0 -> -3.0 is 6.0 apart (> pi): wrapped, a new line. -3.0 -> -2.9
    // -> 0.0 are 0.1 and 2.9 apart: one line.
    assert_eq!(
        angle_segments(&[3.0, -3.0, -2.9, 0.0]),
        vec![vec![(0.0, 3.0)], vec![(1.0, -3.0), (2.0, -2.9), (3.0, 0.0)]]
    );
    assert_eq!(angle_segments(&[]), Vec::<Vec<(f64, f64)>>::new());
    // A swing that passes the bottom twice: three lines.
    let lines = angle_segments(&[3.1, -3.1, -3.0, 3.05, 3.0]);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines.iter().map(Vec::len).sum::<usize>(), 5);
}

#[test]
fn a_maze_picture_puts_walls_goal_and_paths_on_the_grid() {
    let layout = MazeLayout::Medium;
    let (rows, cols) = layout.shape();
    let px = cell_pixels(layout);
    assert_eq!(px, 80);
    // One episode from cell (1, 1) to (2, 2) and back up to (1, 2): 3 steps.
    let path = [[1.0, 1.0], [1.5, 1.5], [2.0, 2.0], [1.0, 2.0]];
    let observations = path.iter().flat_map(|p| [p[0], p[1], 0.0, 0.0]).collect();
    let rollout = Rollout {
        observations,
        actions: vec![0.0; 6],
        success: false,
    };
    let rec = recording(Scene::Maze(layout), 4, 2, vec![rollout]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("maze.png");
    plot_rollouts(&rec, &file).unwrap();
    let img = read(&file);
    assert_eq!(
        img.dimensions(),
        (
            cols as u32 * px + 2 * MARGIN,
            rows as u32 * px + 2 * MARGIN + CAPTION + NOTE
        )
    );
    let pixel = |row: f64, col: f64| {
        let x = MARGIN as f64 + (col + 0.5) * px as f64;
        let y = (CAPTION + MARGIN) as f64 + (row + 0.5) * px as f64;
        img.get_pixel(x as u32, y as u32).0
    };
    let rgb = |c: RGBColor| [c.0, c.1, c.2];
    // Every wall cell's centre is wall grey, every free cell's (but those
    // the path or its markers touch, and the goal) white.
    let touched = [(1, 1), (1, 2), (2, 2)];
    for r in 0..rows {
        for c in 0..cols {
            let expected = if layout.is_wall((r, c)) {
                rgb(WALL)
            } else if (r, c) == layout.goal() {
                rgb(GOAL)
            } else if touched.contains(&(r, c)) {
                continue;
            } else {
                [255, 255, 255]
            };
            assert_eq!(pixel(r as f64, c as f64), expected, "cell ({r}, {c})");
        }
    }
    // The walls fill whole cells: their pixel count is walls * px^2 (the
    // medium maze's rows hold 8, 4, 3, 5, 3, 4, 3 and 8 walls: 38 of 64).
    let walls = (0..rows)
        .flat_map(|r| (0..cols).map(move |c| (r, c)))
        .filter(|&cell| layout.is_wall(cell))
        .count();
    assert_eq!(walls, 38);
    let wall_pixels = count(&img, WALL) as f64;
    let expected = (walls as u32 * px * px) as f64;
    assert!(
        (wall_pixels - expected).abs() < 0.02 * expected,
        "{wall_pixels} wall pixels, expected about {expected}"
    );
    // The goal disk: pi 0.5^2 cells.
    let goal_pixels = count(&img, GOAL) as f64;
    let disk = PI * 0.25 * (px * px) as f64;
    assert!(
        (goal_pixels - disk).abs() < 0.05 * disk,
        "{goal_pixels} goal pixels, disk {disk}"
    );
    // The start dot and the path's midpoint in the episode's colour.
    let color = rgb(episode_color(0));
    assert_eq!(pixel(1.0, 1.0), color);
    assert_eq!(pixel(1.5, 2.0), color);
}

#[test]
fn time_pictures_draw_every_episode() {
    let dir = tempfile::tempdir().unwrap();
    // Pendulum: two episodes of 9 steps, swinging through the bottom.
    let swing = |k: usize| -> Rollout {
        let angles = (0..10).map(|t| 2.5 + 0.2 * t as f64 + k as f64);
        Rollout {
            observations: angles
                .flat_map(|a| [a.cos() as f32, a.sin() as f32, 0.5])
                .collect(),
            actions: (0..9).map(|t| t as f32 / 9.0 - 0.5).collect(),
            success: false,
        }
    };
    let rec = recording(Scene::Pendulum, 3, 1, vec![swing(0), swing(1)]);
    let file = dir.path().join("pendulum.png");
    plot_rollouts(&rec, &file).unwrap();
    let img = read(&file);
    assert_eq!(img.dimensions(), (1200, 860));
    for k in 0..2 {
        assert!(count(&img, episode_color(k)) > 500, "episode {k} is drawn");
    }
    // Signals: 18 observation and 2 action dimensions, the first 16 drawn
    // on a 4 x 4 grid of 420 x 280 panels.
    let flat = Rollout {
        observations: (0..5 * 18).map(|i| i as f32).collect(),
        actions: vec![0.25; 4 * 2],
        success: false,
    };
    let rec = recording(Scene::Signals, 18, 2, vec![flat]);
    let file = dir.path().join("signals.png");
    plot_rollouts(&rec, &file).unwrap();
    let img = read(&file);
    assert_eq!(img.dimensions(), (4 * 420, 4 * 280 + NOTE));
    assert!(count(&img, episode_color(0)) > 16 * 100);
}

#[test]
fn an_unwritable_picture_is_an_error_naming_the_file() {
    let rec = recording(Scene::Pendulum, 3, 1, vec![]);
    let file = Path::new("/nonexistent-folder/rollouts.png");
    let err = plot_rollouts(&rec, file).unwrap_err();
    assert!(
        err.starts_with("cannot draw /nonexistent-folder/rollouts.png: "),
        "{err}"
    );
}

#[test]
fn rings_mark_chunk_starts_unless_every_step_is_one() {
    let mut rec = recording(Scene::Signals, 1, 1, vec![]);
    assert_eq!(ring_steps(&rec, 9).collect::<Vec<_>>(), vec![0, 4, 8]);
    assert_eq!(ring_steps(&rec, 8).collect::<Vec<_>>(), vec![0, 4]);
    rec.execute = 1;
    assert_eq!(ring_steps(&rec, 9).count(), 0);
}
