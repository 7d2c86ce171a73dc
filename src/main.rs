fn main() -> std::process::ExitCode {
    etax_authz::cli::main()
}
