//! Order management: accounts, orders and their lifecycle, fills, positions.

pub mod positions;

pub use positions::Position;
