//! `uniffi-bindgen`: generates the Kotlin, Swift and Python sources of `libaa_ffi.so`
//! (library mode: `uniffi-bindgen generate --library libaa_ffi.so --language kotlin --out-dir DIR`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
