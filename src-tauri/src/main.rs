//! The Tusker desktop app. Its Tauri shell is the next milestone; until it lands this binary
//! says so and points at the headless CLI, which drives the same engine and journal.

fn main() {
    eprintln!(
        "The Tusker desktop window is not built yet. Use `tusker-cli` (same engine, same journal: {}).",
        tusker_core::default_data_dir().display()
    );
    std::process::exit(2);
}
