//! One module per subcommand.

pub mod covdata;
