//! The Dart bindings generator (`uniffi-bindgen-dart generate LIBRARY --out-dir DIR`), built
//! in the workspace so that it shares its build of `uniffi_bindgen` with
//! `weft-uniffi-bindgen`. `scripts/generate-bindings` runs it.

fn main() {
    if let Err(error) = uniffi_bindgen_dart::run(std::env::args_os()) {
        eprintln!("{error:#}");
        std::process::exit(1);
    }
}
