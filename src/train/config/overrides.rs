//! `--set key=value`: overrides of a config's keys, each checked against the
//! config's own layout and value types, with errors that name the key.

use super::{ConfigError, TrainConfig, plain_types};

impl TrainConfig {
    /// Applies `key=value` overrides (dotted keys such as `agent.eta=2.5`;
    /// values in TOML syntax, bare words taken as strings).
    pub fn with_overrides(&self, assignments: &[String]) -> Result<Self, ConfigError> {
        self.check_toml_integers()?;
        let mut cfg = self.clone();
        for assignment in assignments {
            // Each assignment edits the config the ones before it made (so
            // `agent={}` then `agent.eta=2` sets eta in a default agent).
            let mut table = toml::Table::try_from(&cfg).expect("integers checked above");
            // Every key the config has, unset options too (as JSON nulls:
            // TOML has no null, so its table lacks them).
            let layout = serde_json::to_value(&cfg).expect("a config always serialises");
            let set_error = |message: String| ConfigError::Set {
                assignment: assignment.clone(),
                message,
            };
            let (key, raw) = assignment
                .split_once('=')
                .ok_or_else(|| set_error("expected key=value".into()))?;
            let value = parse_value(raw.trim());
            let path: Vec<&str> = key.trim().split('.').collect();
            let (last, parents) = path.split_last().expect("split yields at least one part");
            let unknown = |known: &serde_json::Map<String, serde_json::Value>| {
                set_error(format!(
                    "unknown key `{key}` (keys here: {})",
                    keys_of(known)
                ))
            };
            let mut known = layout.as_object().expect("the config is a struct");
            let mut node = &mut table;
            for part in parents {
                let Some(section) = known.get(*part).and_then(|v| v.as_object()) else {
                    return Err(unknown(known));
                };
                known = section;
                node = node
                    .get_mut(*part)
                    .and_then(|v| v.as_table_mut())
                    .expect("a section of the config is a table of its TOML");
            }
            match known.get(*last) {
                None => return Err(unknown(known)),
                Some(serde_json::Value::Object(section)) if !value.is_table() => {
                    return Err(set_error(format!(
                        "`{key}` is a section: set one of its keys, {key}.KEY=VALUE (keys: {})",
                        keys_of(section)
                    )));
                }
                Some(_) => {}
            }
            let bare_word = value.is_str() && !raw.trim().starts_with(['"', '\'']);
            node.insert(last.to_string(), value);
            cfg = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let mut message = plain_types(e.message());
                    if bare_word {
                        message.push_str(&not_a_value_hint(raw.trim()));
                    }
                    set_error(message)
                })?;
        }
        Ok(cfg)
    }

    /// Refuses an integer beyond TOML's (a signed 64-bit one), naming its
    /// key: `config.toml` could not hold it. Only command-line flags can set
    /// one (`--steps 18446744073709551615`); TOML and `--set` values are
    /// TOML integers already.
    pub(super) fn check_toml_integers(&self) -> Result<(), ConfigError> {
        fn walk(path: &str, value: &serde_json::Value) -> Option<String> {
            match value {
                serde_json::Value::Object(map) => map.iter().find_map(|(key, v)| {
                    let sub = match path {
                        "" => key.clone(),
                        _ => format!("{path}.{key}"),
                    };
                    walk(&sub, v)
                }),
                serde_json::Value::Array(items) => items.iter().find_map(|v| walk(path, v)),
                serde_json::Value::Number(n) if n.as_u64().is_some_and(|v| v > i64::MAX as u64) => {
                    Some(format!(
                        "{path} = {n} is too large (at most {}, the largest integer config.toml \
                         holds)",
                        i64::MAX
                    ))
                }
                _ => None,
            }
        }
        let json = serde_json::to_value(self).expect("a config always serialises");
        match walk("", &json) {
            Some(message) => Err(ConfigError::Invalid(message)),
            None => Ok(()),
        }
    }
}

/// Why a bare `--set` value that TOML did not read as a value is not one:
/// an integer out of TOML's range, TOML's own parse error for what looks
/// like an array or table, a note for what starts like a number; empty for
/// a plain word (the type error says enough).
fn not_a_value_hint(raw: &str) -> String {
    let out_of_range = raw.parse::<i128>().is_ok_and(|v| i64::try_from(v).is_err());
    if out_of_range {
        return format!(
            " (`{raw}` is beyond TOML's integers, {}..={})",
            i64::MIN,
            i64::MAX
        );
    }
    if raw.starts_with(['[', '{']) {
        let error = format!("v = {raw}").parse::<toml::Table>().err();
        let reason = error.map_or(String::new(), |e| format!(": {}", e.message().trim_end()));
        return format!(" (`{raw}` is not a TOML value{reason})");
    }
    if raw.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c)) {
        return format!(" (`{raw}` is not a number TOML can read)");
    }
    String::new()
}

/// The keys of a config section, sorted.
fn keys_of(section: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut keys: Vec<&str> = section.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys.join(", ")
}

/// A `--set` value: TOML if it parses as one, else a plain string.
fn parse_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match wrapped.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
