//! Semantic problems found after parsing, located by key path so the loader can point at the line.

/// A semantic problem found after parsing, located by its key path (e.g. ["collectors", "hwmon", "timeout"]).
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub path: Vec<PathSeg>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

impl From<&str> for PathSeg {
    fn from(s: &str) -> Self {
        PathSeg::Key(s.to_owned())
    }
}

impl From<usize> for PathSeg {
    fn from(i: usize) -> Self {
        PathSeg::Index(i)
    }
}
