//! One module per subcommand.

pub mod covdata;
pub mod collect;
pub mod reset;
