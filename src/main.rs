fn main() -> std::process::ExitCode {
    power_snitch::cli::main()
}
