//! Builds the planner component (`zae-planner` for `wasm32-wasip2`) and tells
//! the host crate where it is, so `engine` can embed it with `include_bytes!`.
//!
//! Set `ZAE_COMPONENT_WASM` to a prebuilt `.wasm` component to skip the nested
//! build (a relative path is resolved against the workspace root).
//!
//! The nested cargo uses its own target directory (`target/component`), so it
//! never waits for the lock the outer build holds, and it runs with the outer
//! build's cargo/rustc configuration variables removed, so that `cargo build`,
//! `cargo test` and `cargo clippy` all produce (and reuse) the same artifact.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "wasm32-wasip2";
/// Cargo profile of the component (see the workspace `Cargo.toml`).
const PROFILE: &str = "component";
const ARTIFACT: &str = "zae_planner.wasm";

/// Exact variables removed from the nested cargo's environment.
const REMOVED_VARS: &[&str] = &[
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_MAKEFLAGS",
    "CARGO_INCREMENTAL",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_CRATE_NAME",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_LINKER",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "MAKEFLAGS",
    "MFLAGS",
    "TARGET",
    "HOST",
    "OUT_DIR",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
];

/// Prefixes of variables removed from the nested cargo's environment.
const REMOVED_PREFIXES: &[&str] = &[
    "CARGO_PROFILE_",
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_CFG_",
    "CARGO_FEATURE_",
    "CARGO_PKG_",
    "CARGO_LLVM_COV",
    "__CARGO",
];

fn removed(name: &str) -> bool {
    REMOVED_VARS.contains(&name) || REMOVED_PREFIXES.iter().any(|p| name.starts_with(p))
}

fn main() -> ExitCode {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().expect("host/ lives inside the workspace").to_path_buf();

    println!("cargo:rerun-if-env-changed=ZAE_COMPONENT_WASM");

    let wasm = match env::var_os("ZAE_COMPONENT_WASM").filter(|v| !v.is_empty()) {
        Some(prebuilt) => match prebuilt_component(&workspace, Path::new(&prebuilt)) {
            Ok(p) => p,
            Err(msg) => {
                eprintln!("error: {msg}");
                return ExitCode::FAILURE;
            }
        },
        None => {
            for input in ["component/src", "component/Cargo.toml", "wit", "Cargo.lock", "Cargo.toml"] {
                println!("cargo:rerun-if-changed={}", workspace.join(input).display());
            }
            match build_component(&workspace) {
                Ok(p) => p,
                Err(msg) => {
                    eprintln!("error: {msg}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };

    println!("cargo:rustc-env=ZAE_COMPONENT_PATH={}", wasm.display());
    match precompile(&wasm) {
        Ok(cwasm) => println!("cargo:rustc-env=ZAE_COMPONENT_CWASM_PATH={}", cwasm.display()),
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

mod engine_config {
    include!("src/engine_config.rs");
}

/// Compile the component ahead of time for the target being built, so a cold
/// start only maps machine code instead of running Cranelift.
fn precompile(wasm: &Path) -> Result<PathBuf, String> {
    let target = env::var("TARGET").map_err(|_| "cargo did not set TARGET".to_string())?;
    println!("cargo:rustc-env=ZAE_ENGINE_TARGET={target}");
    println!("cargo:rerun-if-changed=src/engine_config.rs");
    let config =
        engine_config::engine_config(&target).map_err(|e| format!("engine configuration for {target}: {e}"))?;
    let engine = wasmtime::Engine::new(&config).map_err(|e| format!("creating the wasmtime engine: {e}"))?;
    let bytes = std::fs::read(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let cwasm = engine.precompile_component(&bytes).map_err(|e| format!("precompiling the component: {e:?}"))?;
    let out = PathBuf::from(env::var_os("OUT_DIR").ok_or("cargo did not set OUT_DIR")?).join("zae_planner.cwasm");
    std::fs::write(&out, cwasm).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(out)
}

fn prebuilt_component(workspace: &Path, given: &Path) -> Result<PathBuf, String> {
    let path = if given.is_absolute() { given.to_path_buf() } else { workspace.join(given) };
    println!("cargo:rerun-if-changed={}", path.display());
    let path = path.canonicalize().map_err(|e| format!("ZAE_COMPONENT_WASM={}: {e}", given.display()))?;
    if !path.is_file() {
        return Err(format!("ZAE_COMPONENT_WASM={} is not a file", given.display()));
    }
    Ok(path)
}

fn build_component(workspace: &Path) -> Result<PathBuf, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = workspace.join("target").join("component");

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "zae-planner", "--target", TARGET, "--profile", PROFILE, "--locked", "--target-dir"])
        .arg(&target_dir);
    for (name, _) in env::vars_os() {
        if let Some(name) = name.to_str() {
            if removed(name) {
                cmd.env_remove(name);
            }
        }
    }

    let output = cmd.output().map_err(|e| format!("could not run {}: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        eprintln!("----- nested `cargo build -p zae-planner --target {TARGET}` stderr -----");
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        eprintln!("----- end of nested cargo stderr -----");
        return Err(format!(
            "building the planner component failed ({}). If the `{TARGET}` target is missing, \
             run `rustup target add {TARGET}`; or set ZAE_COMPONENT_WASM to a prebuilt component.",
            output.status
        ));
    }

    let wasm = target_dir.join(TARGET).join(PROFILE).join(ARTIFACT);
    if !wasm.is_file() {
        return Err(format!("the nested build succeeded but {} does not exist", wasm.display()));
    }
    Ok(wasm)
}
