//! The `fig` binary: everything lives in the library, see `src/lib.rs`.

fn main() -> std::process::ExitCode {
    fig::main(std::env::args_os())
}
