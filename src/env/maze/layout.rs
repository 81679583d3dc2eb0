//! The D4RL maze2d wall grids (`d4rl/pointmaze/maze_model.py`): `#` wall,
//! `O` free, `G` the goal (free). A cell is `(row, col)`: the first index is
//! the line of the layout, the second the character in it, as in D4RL's
//! `maze_arr[w][h]` and its `qpos`.

/// A grid cell `(row, col)`.
pub type Cell = (usize, usize);

/// D4RL `U_MAZE` (5 x 5), goal (1, 1).
const U_MAZE: [&str; 5] = ["#####", "#GOO#", "###O#", "#OOO#", "#####"];

/// D4RL `MEDIUM_MAZE` (8 x 8), goal (6, 6).
const MEDIUM_MAZE: [&str; 8] = [
    "########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#", "#OOO#OG#", "########",
];

/// D4RL `LARGE_MAZE` (9 rows x 12 columns), goal (7, 9).
const LARGE_MAZE: [&str; 9] = [
    "############",
    "#OOOO#OOOOO#",
    "#O##O#O#O#O#",
    "#OOOOOO#OOO#",
    "#O####O###O#",
    "#OO#O#OOOOO#",
    "##O#O#O#O###",
    "#OO#OOO#OGO#",
    "############",
];

/// Which D4RL maze2d layout (the `maze2d-*-v1` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MazeLayout {
    UMaze,
    Medium,
    Large,
}

impl MazeLayout {
    /// The wall grid, one string per row.
    pub fn rows(self) -> &'static [&'static str] {
        match self {
            MazeLayout::UMaze => &U_MAZE,
            MazeLayout::Medium => &MEDIUM_MAZE,
            MazeLayout::Large => &LARGE_MAZE,
        }
    }

    /// Short name used in environment names (`pointmaze-<name>`).
    pub fn name(self) -> &'static str {
        match self {
            MazeLayout::UMaze => "umaze",
            MazeLayout::Medium => "medium",
            MazeLayout::Large => "large",
        }
    }

    /// Time limit of D4RL's `maze2d-*-v1`: 300 / 600 / 800 steps.
    pub fn max_steps(self) -> usize {
        match self {
            MazeLayout::UMaze => 300,
            MazeLayout::Medium => 600,
            MazeLayout::Large => 800,
        }
    }

    /// `(rows, cols)` of the grid.
    pub fn shape(self) -> (usize, usize) {
        let rows = self.rows();
        (rows.len(), rows[0].len())
    }

    /// The character at `(row, col)`; `None` outside the grid.
    fn at(self, row: i64, col: i64) -> Option<u8> {
        let rows = self.rows();
        let line = rows.get(usize::try_from(row).ok()?)?;
        line.as_bytes().get(usize::try_from(col).ok()?).copied()
    }

    /// Whether `(row, col)` is a wall; everything outside the grid is wall.
    pub fn is_wall_at(self, row: i64, col: i64) -> bool {
        self.at(row, col).is_none_or(|c| c == b'#')
    }

    /// Whether `cell` is a wall (or outside the grid).
    pub fn is_wall(self, cell: Cell) -> bool {
        self.is_wall_at(cell.0 as i64, cell.1 as i64)
    }

    /// The goal cell (the `G`).
    pub fn goal(self) -> Cell {
        self.cells_where(|c| c == b'G')[0]
    }

    /// All free cells, goal included, in row-major order.
    pub fn free_cells(self) -> Vec<Cell> {
        self.cells_where(|c| c != b'#')
    }

    /// Free cells an episode may start in: all but the goal, row-major.
    pub fn start_cells(self) -> Vec<Cell> {
        self.cells_where(|c| c != b'#' && c != b'G')
    }

    fn cells_where(self, keep: impl Fn(u8) -> bool) -> Vec<Cell> {
        let mut cells = vec![];
        for (row, line) in self.rows().iter().enumerate() {
            for (col, c) in line.bytes().enumerate() {
                if keep(c) {
                    cells.push((row, col));
                }
            }
        }
        cells
    }
}
