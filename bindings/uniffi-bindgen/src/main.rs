//! uniffi's bindings generator, built at the uniffi version `weft-ffi` uses, so the generated
//! Kotlin, Swift and Python always match the library they load. See `bindings/README.md`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
