// The wasmtime engine configuration, shared verbatim by `build.rs` (which
// precompiles the component with it) and `engine.rs` (which loads the
// precompiled code or, failing that, compiles with it). A precompiled
// component only loads into an engine configured exactly like the one that
// produced it, so this function is the single place that configuration lives.
//
// The target is explicit so that the code does not depend on the CPU of the
// build machine: x86-64 code uses the x86-64-v2 feature level (SSE4.2,
// POPCNT), which every x86-64 Lambda host has; aarch64 uses its baseline.

/// The engine configuration for `target` (a Rust target triple).
pub fn engine_config(target: &str) -> wasmtime::Result<wasmtime::Config> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.target(target)?;
    if target.starts_with("x86_64") {
        for flag in ["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"] {
            // SAFETY: the flags only select instructions; an artifact using a
            // feature the running CPU lacks is refused when it is loaded, and
            // the host then compiles the component itself.
            unsafe {
                config.cranelift_flag_enable(flag);
            }
        }
    }
    Ok(config)
}
