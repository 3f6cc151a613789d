//! Tests that keep the documentation in step with the code: every flag in docs/relay.md and in
//! the packaged settings file with its default, every metric documented, the notification
//! channel the extension's. A leaf module: it may read every other, none reads it.

use crate::config::Config;
use clap::CommandFactory;

const RELAY_MD: &str = include_str!("../../docs/relay.md");
const SETTINGS_FILE: &str = include_str!("../../packaging/infor-relay/infor-relay.env");

/// Every flag has its row in docs/relay.md's table, with its environment variable and its
/// default, and its line in the packaged settings file, with the same default.
#[test]
fn every_flag_is_documented_with_its_default_and_in_the_settings_file() {
    let command = Config::command();
    let mut checked = 0;
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") {
            continue;
        }
        let row = RELAY_MD
            .lines()
            .find(|line| line.starts_with(&format!("| `--{long}` |")))
            .unwrap_or_else(|| panic!("docs/relay.md has no row for --{long}"));
        let env = arg
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("--{long} has no environment variable"));
        assert!(
            row.contains(&format!("`{env}`")),
            "docs/relay.md's row of --{long} does not name {env}"
        );
        assert!(
            SETTINGS_FILE.contains(&format!("#{env}=")),
            "packaging/infor-relay/infor-relay.env has no line #{env}="
        );
        if arg.get_action().takes_values() {
            if let Some(default) = arg.get_default_values().first() {
                let default = default.to_string_lossy();
                assert!(
                    row.contains(&format!("`{default}`")),
                    "docs/relay.md's row of --{long} does not give its default {default}"
                );
                assert!(
                    SETTINGS_FILE.contains(&format!("#{env}={default}\n")),
                    "the settings file does not give {env} its default {default}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} flags");
}

/// Every metric the relay exports is named in docs/relay.md.
#[test]
fn every_metric_is_documented() {
    for (metric, _, _) in crate::metrics::DESCRIPTIONS {
        assert!(
            RELAY_MD.contains(&format!("`{metric}")),
            "docs/relay.md does not name the metric {metric}"
        );
    }
}

/// The packaged unit does not restart a relay that exited for a setting that can never work.
#[test]
fn the_unit_does_not_restart_on_the_configuration_exit_status() {
    let unit = include_str!("../../packaging/infor-relay/infor-relay.service");
    let prevented = unit
        .lines()
        .find_map(|line| line.strip_prefix("RestartPreventExitStatus="))
        .expect("the unit has RestartPreventExitStatus=");
    assert!(
        prevented
            .split_whitespace()
            .any(|status| status == crate::EXIT_CONFIG.to_string()),
        "RestartPreventExitStatus={prevented} does not list {}",
        crate::EXIT_CONFIG
    );
    assert!(
        unit.contains("Restart=on-failure"),
        "the unit restarts on failures"
    );
    assert!(
        RELAY_MD.contains(&format!("**{}**", crate::EXIT_CONFIG)),
        "docs/relay.md does not give the exit status {}",
        crate::EXIT_CONFIG
    );
}

/// The relay works with the extension of its own release (the workspace's version).
#[test]
fn the_relay_knows_the_extension_of_its_release() {
    assert!(crate::database::EXTENSION_VERSIONS.contains(&env!("CARGO_PKG_VERSION")));
}

/// The channel the extension notifies is the one the relay listens on.
#[test]
fn the_outbox_channel_is_the_extensions() {
    let extension = include_str!("../../pg_ext/src/outbox.rs");
    assert!(
        extension.contains(&format!(
            "pub const OUTBOX_CHANNEL: &str = \"{}\";",
            crate::database::OUTBOX_CHANNEL
        )),
        "pg_ext/src/outbox.rs notifies another channel than {}",
        crate::database::OUTBOX_CHANNEL
    );
}

/// docs/packaging.md names the packages of this version, as scripts/package names them.
#[test]
fn the_packaging_docs_name_this_versions_packages() {
    let packaging = include_str!("../../docs/packaging.md");
    let script = include_str!("../../scripts/package");
    let version = env!("CARGO_PKG_VERSION");
    for package in ["postgresql-15-infor-comm", "infor-relay"] {
        let file = format!("./{package}_{version}-1_amd64.deb");
        assert!(
            packaging.contains(&file),
            "docs/packaging.md does not install {file}"
        );
        assert!(
            packaging.contains(&format!("| `{package}_<version>-1_<arch>.deb` |")),
            "docs/packaging.md has no row for the package {package}"
        );
    }
    for shipped in ["changelog.gz", "copyright", "relay.md"] {
        assert!(
            script.contains(shipped),
            "scripts/package does not ship {shipped}"
        );
        assert!(
            packaging.contains(&format!("{shipped}`")),
            "docs/packaging.md does not say the packages ship {shipped}"
        );
    }
    for older in ["0.1.0-1_", "0.2.0-1_"] {
        assert!(
            !packaging.contains(older) || version.starts_with(&older[..5]),
            "docs/packaging.md still names a package of {older}"
        );
    }
}
