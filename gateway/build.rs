//! Rebuilds the gateway when a migration changes. `sqlx::migrate!` embeds
//! the files of `migrations/` at compile time, but on stable Rust it cannot
//! tell cargo that it read them: without this, a new or edited migration
//! leaves a binary that silently lacks it until some source file changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
