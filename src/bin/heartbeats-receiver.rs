//! The `heartbeats-receiver` binary: a fake sink for integration tests (see the README).

fn main() {
    std::process::exit(heartbeats::receiver::main(std::env::args_os().skip(1)));
}
