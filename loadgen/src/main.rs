//! fkload: the load generator (issue 6). Not built yet: it says so and exits non-zero.

fn main() {
    eprintln!("fkload: the load generator is not implemented yet (see issue 6)");
    std::process::exit(2);
}
