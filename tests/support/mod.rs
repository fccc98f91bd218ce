//! The test bed every integration test stands on.
//!
//! Each helper starts real processes inside a [`Sandbox`] (a throwaway HOME with a clean
//! environment), waits for them by probing, and stops exactly what it started, by PID, on `Drop`
//! (also when the test panics). Nothing here mocks a component: [`Moto`] is moto's STS,
//! [`Keyring`] is gnome-keyring on a private session bus, [`FaultProxy`] sits in front of moto
//! to inject the failures moto never produces, and [`Rolecall`] runs the built binary, the AWS
//! CLI and boto3. [`credfile`] reads the credentials file's sections back.
//!
//! Helpers must not touch the developer's HOME, keyring, session bus or AWS environment.

#![allow(
    dead_code,
    reason = "shared by every test module; each module uses only some helpers"
)]

#[macro_use]
mod macros;

mod command;
pub mod credfile;
mod daemon;
mod desktop;
mod endpoints;
mod fault_proxy;
mod http_server;
mod imds;
mod keyring;
mod moto;
mod probe;
mod process;
mod rolecall;
mod sandbox;
mod tools;
mod webdriver;
mod world;

#[allow(
    unused_imports,
    reason = "the bed's API; each test module imports only what it needs"
)]
pub use self::{
    command::{Output, TestCommand},
    daemon::Daemon,
    desktop::{
        App, MenuItem, Notifications, X11Window, Xvfb, app_bin, parse_layout, parse_windows,
    },
    endpoints::{RawResponse, Served, raw_http},
    fault_proxy::{Fault, FaultProxy, ProxiedRequest},
    imds::{Imds, ImdsCredentials, ImdsRequest},
    keyring::{BusMonitor, Keyring},
    moto::{Moto, free_port},
    probe::{http_request, wait_until},
    process::{Process, pid_exists},
    rolecall::{Rolecall, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY},
    sandbox::{Env, Sandbox},
    tools::{bastion_bin, rolecall_bin, venv_bin, venv_dir, workspace_root},
    webdriver::{Driver, tauri_driver_bin},
    world::{CONFIG, MFA_SERIAL, World},
};
