// `sqlx::migrate!` embeds ../migrations at compile time, but on stable Rust cargo does not
// know the macro read that folder: without this, a new migration file leaves an already
// built crate (and every binary that applies migrations at start-up) without it.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
