fn main() -> std::process::ExitCode {
    agent::main_with_args()
}
