//! Reading a service's settings from the environment: typed getters that fall back to a
//! default when a variable is unset or blank, and record a problem naming the variable
//! when its value is wrong, so every problem is reported at once rather than the first
//! one per start. Tests read from a map through [`Reader::new`] and never touch the
//! process environment.

use std::{fmt, str::FromStr, time::Duration};

use secrecy::SecretString;

/// Every problem found in the environment, one a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// Prints the problems on stderr and exits with status 2, as for a wrong command
    /// line: the service never starts with a configuration it could not read.
    pub fn exit(&self) -> ! {
        eprintln!("{self}");
        std::process::exit(2)
    }
}

/// A configuration read from the environment: the service says how ([`FromEnv::read`]),
/// the reading and the reporting of problems are the same everywhere.
pub trait FromEnv: Sized {
    /// Reads every setting through `env`; problems are recorded there, not returned.
    fn read(env: &mut Reader<'_>) -> Self;

    /// Reads the process environment.
    fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup` (the environment, or a map in tests).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut env = Reader::new(lookup);
        let config = Self::read(&mut env);
        env.finish(config)
    }

    /// Reads `(name, value)` pairs, a later pair overriding an earlier one of the same
    /// name: how tests give an environment.
    fn from_vars(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            let mut named = vars.iter().rev().filter(|(n, _)| *n == name);
            named.next().map(|(_, value)| (*value).to_owned())
        })
    }
}

/// Where values come from: the process environment, or a map in tests.
type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Reads variables through a lookup, recording every problem instead of stopping at
/// the first. A variable that is unset or blank counts as unset.
pub struct Reader<'a> {
    lookup: Lookup<'a>,
    problems: Vec<String>,
}

impl<'a> Reader<'a> {
    /// Reads through `lookup` (the environment, or a map in tests).
    pub fn new(lookup: impl Fn(&str) -> Option<String> + 'a) -> Reader<'a> {
        Reader {
            lookup: Box::new(lookup),
            problems: Vec::new(),
        }
    }

    /// `value` if nothing was wrong, else every problem recorded.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match self.problems.is_empty() {
            true => Ok(value),
            false => Err(ConfigError {
                problems: self.problems,
            }),
        }
    }

    /// Records a problem found by the caller (a rule between settings, say); it should
    /// name the variables involved.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The raw value, `None` when unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// The value; a problem when unset.
    pub fn required(&mut self, name: &str) -> Option<String> {
        let value = self.get(name);
        if value.is_none() {
            self.problem(format!("{name} is required"));
        }
        value
    }

    /// A secret with no default: a problem when unset (and an empty secret returned,
    /// which the start-up never reaches).
    pub fn secret(&mut self, name: &str) -> SecretString {
        self.required(name).unwrap_or_default().into()
    }

    /// The value parsed, or `default` when unset; a value that does not parse is a
    /// problem (shown with the parser's reason; never use this for secrets).
    pub fn parsed<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let Some(raw) = self.get(name) else {
            return default;
        };
        match raw.trim().parse() {
            Ok(value) => value,
            Err(e) => {
                self.problem(format!("{name}={raw:?}: {e}"));
                default
            }
        }
    }

    /// A number greater than zero (a count, a size, an amount), or `default` when unset.
    pub fn positive<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr + Default + PartialOrd,
        T::Err: fmt::Display,
    {
        if self.get(name).is_none() {
            return default;
        }
        let problems = self.problems.len();
        let value = self.parsed(name, T::default());
        if value > T::default() {
            return value;
        }
        if self.problems.len() == problems {
            self.problem(format!("{name} must be greater than zero"));
        }
        default
    }

    /// Whole seconds, more than zero.
    pub fn seconds(&mut self, name: &str, default: u64) -> Duration {
        Duration::from_secs(self.positive(name, default))
    }

    /// Whole milliseconds, more than zero.
    pub fn millis(&mut self, name: &str, default: u64) -> Duration {
        Duration::from_millis(self.positive(name, default))
    }

    /// Whole seconds, where 0 turns the feature off (`None`).
    pub fn optional_seconds(&mut self, name: &str, default: u64) -> Option<Duration> {
        let secs: u64 = self.parsed(name, default);
        (secs > 0).then(|| Duration::from_secs(secs))
    }

    /// An `http://` or `https://` URL, without a trailing `/`.
    pub fn url(&mut self, name: &str, default: &str) -> String {
        let value = self.get(name).unwrap_or_else(|| default.to_owned());
        let value = value.trim().trim_end_matches('/').to_owned();
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            self.problem(format!(
                "{name}={value:?} must be an http:// or https:// URL"
            ));
        }
        value
    }

    /// A comma-separated list, each item trimmed, empty ones left out; empty when unset.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|raw| {
                raw.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A required comma-separated list of secrets; an empty entry is a problem (it is
    /// more likely a typo than a wish for fewer secrets).
    pub fn secret_list(&mut self, name: &str) -> Vec<SecretString> {
        let Some(raw) = self.required(name) else {
            return Vec::new();
        };
        let items: Vec<&str> = raw.split(',').map(str::trim).collect();
        if items.iter().any(|s| s.is_empty()) {
            self.problem(format!(
                "{name} has an empty entry (use a,b to list two secrets)"
            ));
        }
        items
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(SecretString::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret as _;

    use super::*;

    impl FromEnv for Vec<String> {
        fn read(env: &mut Reader<'_>) -> Self {
            env.list("LIST")
        }
    }

    #[test]
    fn a_later_pair_overrides_an_earlier_one() {
        let read = Vec::<String>::from_vars(&[("LIST", "a"), ("OTHER", "b"), ("LIST", "c,d")]);
        assert_eq!(read, Ok(vec!["c".to_owned(), "d".to_owned()]));
    }

    fn reader(vars: &[(&str, &str)]) -> Reader<'static> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Reader::new(move |name| vars.get(name).cloned())
    }

    #[test]
    fn unset_and_blank_variables_take_the_default() {
        let mut env = reader(&[("BLANK", "  ")]);
        assert_eq!(env.parsed("UNSET", 7_u32), 7);
        assert_eq!(env.parsed("BLANK", 7_u32), 7);
        assert_eq!(env.seconds("UNSET", 3), Duration::from_secs(3));
        assert_eq!(env.url("UNSET", "https://a.example/"), "https://a.example");
        assert!(env.list("UNSET").is_empty());
        assert_eq!(env.finish(()), Ok(()));
    }

    #[test]
    fn every_problem_names_its_variable_and_all_are_reported_together() {
        let mut env = reader(&[
            ("PORT", "eighty"),
            ("COUNT", "0"),
            ("WAIT_MS", "-1"),
            ("BASE", "api.example.com"),
            ("SECRETS", "a,,b"),
        ]);
        env.parsed::<u16>("PORT", 80);
        env.positive::<usize>("COUNT", 1);
        env.millis("WAIT_MS", 10);
        env.url("BASE", "https://api.example.com");
        env.secret("KEY");
        env.secret_list("SECRETS");
        let problems = env.finish(()).expect_err("invalid").problems;
        let named: Vec<&str> = problems
            .iter()
            .map(|p| p.split(['=', ' ']).next().unwrap_or_default())
            .collect();
        assert_eq!(
            named,
            ["PORT", "COUNT", "WAIT_MS", "BASE", "KEY", "SECRETS"]
        );
        assert_eq!(problems[1], "COUNT must be greater than zero");
        assert_eq!(problems[4], "KEY is required");
    }

    #[test]
    fn zero_turns_an_optional_interval_off() {
        let mut env = reader(&[("EVERY", "0"), ("OTHER", "5")]);
        assert_eq!(env.optional_seconds("EVERY", 60), None);
        assert_eq!(
            env.optional_seconds("OTHER", 60),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            env.optional_seconds("UNSET", 60),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn lists_are_trimmed_and_secrets_are_kept_apart() {
        let mut env = reader(&[("LIST", " a, b ,,c "), ("SECRETS", " old , new ")]);
        assert_eq!(env.list("LIST"), ["a", "b", "c"]);
        let secrets = env.secret_list("SECRETS");
        let secrets: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(secrets, ["old", "new"]);
    }

    #[test]
    fn the_error_lists_one_problem_a_line() {
        let err = ConfigError {
            problems: vec!["A is required".into(), "B=\"x\": bad".into()],
        };
        assert_eq!(
            err.to_string(),
            "invalid configuration:\n  - A is required\n  - B=\"x\": bad"
        );
    }
}
