//! The queue: the [`engine`] actor that owns every upload's state, the pure [`lifecycle`]
//! that decides it, and the rows and speeds front ends are shown.

pub mod engine;
pub mod lifecycle;
pub mod progress;
pub(crate) mod row;
