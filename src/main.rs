//! The `fig` binary: everything lives in the library, see `src/lib.rs`.

// The proxy allocates a little on every request (header maps, boxed futures, buffers) and frees
// it on another path a few microseconds later; mimalloc's thread-local free lists make that
// cheaper than glibc's malloc, which measurably lowers CPU time per proxied request
// (docs/benchmarks.md). The allocator is the binary's choice, so it is set here, not in a library;
// a build without the proxy (`--no-default-features`) keeps the system's and skips compiling it.
#[cfg(feature = "proxy")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    fig::main(std::env::args_os())
}
