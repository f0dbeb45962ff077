//! The `heartbeats` binary.

fn main() {
    std::process::exit(heartbeats::main(std::env::args_os().skip(1)));
}
