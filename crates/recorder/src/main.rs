//! The `recorder` binary; see the library for what it does.
fn main() -> std::process::ExitCode {
    chocominer_pipeline::runtime::main(recorder::run)
}
