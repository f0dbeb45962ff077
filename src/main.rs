//! The `heartbeats` binary: blocks the stop signals first, then runs.

fn main() {
    if let Err(error) = heartbeats::sys::block_stop_signals() {
        heartbeats::log::line(format_args!("cannot block SIGTERM/SIGINT: {error}"));
        std::process::exit(heartbeats::error::EXIT_CONFIG);
    }
    let status = heartbeats::run(std::env::args_os().skip(1), &heartbeats::config::Process);
    std::process::exit(status);
}
