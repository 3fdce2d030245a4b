fn main() -> std::process::ExitCode {
    agent::control::ctl::main_with_args()
}
