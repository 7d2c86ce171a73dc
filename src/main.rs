// mimalloc instead of glibc's malloc: a decision allocates and frees many
// small objects (Cedar entities, uids, JSON values), and glibc's allocator
// was about a sixth of the server's CPU under the bureau-scale mix
// (malloc, free, consolidation; BENCHMARKS.md "Bureau scale").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    etax_authz::cli::main()
}
