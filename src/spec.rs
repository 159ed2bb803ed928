//! Lock specs of the form `SCHEME:PATH?KEY=SECONDS&...` (`lease:`, `softrw:`), read the
//! same way for every lock that takes them.

use std::path::PathBuf;

use crate::Error;

/// The `(key, duration)` settings of a spec's query.
pub(crate) type Settings<'a> = Vec<(&'a str, std::time::Duration)>;

/// A spec `SCHEME:PATH`, optionally followed by `?KEY=SECONDS&...` (the query starts at
/// the last `?`): its path and its `(key, duration)` pairs, each key one of `keys` and each
/// value a positive, finite number of seconds (decimals allowed, as Python's floats).
/// [`Error::InvalidSpec`] naming the spec otherwise.
pub(crate) fn seconds_spec<'a>(
    spec: &'a str,
    scheme: &str,
    keys: &[&str],
) -> Result<(&'a str, Settings<'a>), Error> {
    let invalid = |reason: String| Error::InvalidSpec {
        path: PathBuf::from(spec),
        reason,
    };
    let known = keys
        .iter()
        .map(|k| format!("`{k}=SECONDS`"))
        .collect::<Vec<_>>()
        .join(", ");
    let rest = spec
        .strip_prefix(scheme)
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(|| invalid(format!("a {scheme} spec starts with `{scheme}:`")))?;
    let (path, query) = match rest.rsplit_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(invalid(format!("`{scheme}:` needs a path after it")));
    }
    let mut pairs = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("{scheme} parameters are {known}")))?;
        if !keys.contains(&key) {
            return Err(invalid(format!(
                "unknown {scheme} parameter `{key}` (known: {known})"
            )));
        }
        let seconds = value
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
            .ok_or_else(|| invalid(format!("`{key}` is a positive number of seconds")))?;
        pairs.push((key, seconds));
    }
    Ok((path, pairs))
}
