//! Host bindings for the `planner` world of `wit/planner.wit`.
//!
//! Kept in a module of their own: the world uses a type named `config`, whose
//! generated Rust name (`Config`) would clash with `wasmtime::Config`.
//! Exports are called asynchronously (the store runs with epoch-based
//! yielding and an async WASI linker). Parameters borrow (`ownership:
//! Borrowing`): the event text goes from the host's buffer straight into the
//! guest's memory, without an intermediate copy (a 25 MB event would
//! otherwise be held three times at once).

#![allow(missing_docs)]

wasmtime::component::bindgen!({
    world: "planner",
    path: "../wit",
    exports: { default: async },
    ownership: Borrowing { duplicate_if_necessary: false },
});
