//! Shortest paths on the maze grid: breadth-first search from the goal over
//! 4-connected free cells. D4RL's waypoint controller gets the same paths
//! from value iteration on a deterministic grid world.

use super::layout::{Cell, MazeLayout};

/// Neighbour offsets `(d_row, d_col)` in D4RL's gridcraft action order
/// (UP, DOWN, LEFT, RIGHT), which is also our tie-break order.
const STEPS: [(i64, i64); 4] = [(0, -1), (0, 1), (-1, 0), (1, 0)];

const UNREACHABLE: u32 = u32::MAX;

/// The grid distance of every cell to the goal, and the moves it implies.
#[derive(Debug, Clone)]
pub struct Planner {
    layout: MazeLayout,
    cols: usize,
    /// `[rows * cols]` steps to the goal; `UNREACHABLE` for walls.
    distance: Vec<u32>,
}

impl Planner {
    /// Breadth-first search from the goal of `layout`.
    pub fn new(layout: MazeLayout) -> Self {
        let (rows, cols) = layout.shape();
        let mut distance = vec![UNREACHABLE; rows * cols];
        let goal = layout.goal();
        distance[goal.0 * cols + goal.1] = 0;
        let mut queue = std::collections::VecDeque::from([goal]);
        while let Some(cell) = queue.pop_front() {
            let d = distance[cell.0 * cols + cell.1];
            for next in free_neighbours(layout, cell) {
                let slot = &mut distance[next.0 * cols + next.1];
                if *slot == UNREACHABLE {
                    *slot = d + 1;
                    queue.push_back(next);
                }
            }
        }
        Planner {
            layout,
            cols,
            distance,
        }
    }

    /// The free 4-neighbours of `cell`, in tie-break order.
    pub fn neighbours(&self, cell: Cell) -> impl Iterator<Item = Cell> + use<> {
        free_neighbours(self.layout, cell)
    }

    /// Steps from `cell` to the goal; `None` for walls and cells off the grid.
    pub fn distance(&self, cell: Cell) -> Option<usize> {
        if self.layout.is_wall(cell) {
            return None;
        }
        let d = self.distance[cell.0 * self.cols + cell.1];
        (d != UNREACHABLE).then_some(d as usize)
    }

    /// The first cell of a shortest path from `cell` to the goal (the first
    /// closest neighbour in tie-break order); `None` at the goal or off the
    /// free cells.
    pub fn next_cell(&self, cell: Cell) -> Option<Cell> {
        let here = self.distance(cell)?;
        if here == 0 {
            return None;
        }
        self.neighbours(cell)
            .find(|&n| self.distance(n) == Some(here - 1))
    }

    /// The cells of the planned path from `start` to the goal, both included.
    pub fn path(&self, start: Cell) -> Vec<Cell> {
        let mut path = vec![start];
        let mut cell = start;
        while let Some(next) = self.next_cell(cell) {
            path.push(next);
            cell = next;
        }
        path
    }

    /// The largest distance to the goal over the free cells.
    pub fn max_distance(&self) -> usize {
        let reachable = self.distance.iter().filter(|&&d| d != UNREACHABLE);
        reachable.copied().max().unwrap_or(0) as usize
    }
}

/// The free 4-neighbours of `cell` in `layout`, in tie-break order.
fn free_neighbours(layout: MazeLayout, cell: Cell) -> impl Iterator<Item = Cell> {
    STEPS.iter().filter_map(move |&(dr, dc)| {
        let (row, col) = (cell.0 as i64 + dr, cell.1 as i64 + dc);
        (!layout.is_wall_at(row, col)).then_some((row as usize, col as usize))
    })
}
