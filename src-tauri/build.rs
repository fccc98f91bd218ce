//! Tauri's build step: embeds tauri.conf.json, the capabilities and the command permissions.

fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(
        tauri_build::AppManifest::new().commands(&[
            "mfa_prompt",
            "submit_mfa_code",
            "read_settings",
            "change_settings",
            "switch_profile",
            "set_start_at_login",
        ]),
    ))
    .expect("tauri build step (reads tauri.conf.json and capabilities/)");
}
