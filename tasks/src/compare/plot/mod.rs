//! The four PNG plots. Each plot is split in two: `prepare` turns the ranked runs into the exact
//! data drawn (whose digest is the plot's input digest) and `draw` turns that data into pixels.

pub(crate) mod bars;
pub(crate) mod canvas;
pub(crate) mod curves;
pub(crate) mod font;
pub(crate) mod scatter;
pub(crate) mod sizes;
