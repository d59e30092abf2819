//! One module per subcommand; `///` docs on the variants are the `--help` text.

mod demo;

use crate::Host;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Hunt the leak in the bundled demo web app, start to finish.
    Demo(demo::DemoArgs),
}

pub fn dispatch(command: Command, host: &dyn Host) -> anyhow::Result<i32> {
    match command {
        Command::Demo(args) => demo::run(&args, host),
    }
}
