fn main() -> std::process::ExitCode {
    agent::ctl::main_with_args()
}
