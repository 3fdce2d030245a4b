//! Sets the cfgs that ignore the tests whose tools are missing (see external_tools.rs).

#[path = "external_tools.rs"]
mod external_tools;

fn main() {
    external_tools::emit_external_cfgs();
}
