//! Reads what the local tools need from `template.yaml`.
use std::path::Path;

use serde_yaml::Value;

/// One `HttpApi` event of a function: `METHOD /path/{param}` served by a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

impl Route {
    /// The path parameters when `path` matches this route, or `None`.
    pub fn matches(&self, method: &str, path: &str) -> Option<Vec<(String, String)>> {
        if !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        let pattern: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let actual: Vec<&str> = path.trim_matches('/').split('/').collect();
        if pattern.len() != actual.len() {
            return None;
        }
        let mut parameters = Vec::new();
        for (p, a) in pattern.iter().zip(&actual) {
            match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(name) if !a.is_empty() => parameters.push((name.to_owned(), (*a).to_owned())),
                Some(_) => return None,
                None if p == a => {}
                None => return None,
            }
        }
        Some(parameters)
    }

    /// Literal segments count more than parameters, so `/customers/me` wins over `/customers/{id}`.
    fn specificity(&self) -> usize {
        self.path.split('/').filter(|s| !s.starts_with('{')).count()
    }
}

pub fn load(path: impl AsRef<Path>) -> Result<Value, String> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| format!("cannot parse {}: {e}", path.display()))
}

/// The functions of the template as (logical id, properties, binary name).
pub fn functions(template: &Value) -> Vec<(String, &Value, String)> {
    let Some(resources) = template.get("Resources").and_then(Value::as_mapping) else {
        return Vec::new();
    };
    resources
        .iter()
        .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function"))
        .filter_map(|(id, r)| {
            let binary = r.get("Metadata")?.get("BuildProperties")?.get("Binary")?.as_str()?;
            Some((id.as_str()?.to_owned(), r.get("Properties")?, binary.to_owned()))
        })
        .collect()
}

/// Every `HttpApi` route of the template, most specific first.
pub fn http_routes(template: &Value) -> Vec<Route> {
    let mut routes: Vec<Route> = functions(template)
        .into_iter()
        .flat_map(|(_, properties, function)| {
            let events = properties.get("Events").and_then(Value::as_mapping).cloned().unwrap_or_default();
            events
                .into_iter()
                .filter(|(_, e)| e.get("Type").and_then(Value::as_str) == Some("HttpApi"))
                .filter_map(|(_, e)| {
                    let properties = e.get("Properties")?;
                    Some(Route {
                        method: properties.get("Method")?.as_str()?.to_uppercase(),
                        path: properties.get("Path")?.as_str()?.to_owned(),
                        function: function.clone(),
                    })
                })
                .collect::<Vec<_>>()
        })
        .collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
    routes
}

/// The route serving `method path`, with its path parameters.
pub fn find_route<'a>(routes: &'a [Route], method: &str, path: &str) -> Option<(&'a Route, Vec<(String, String)>)> {
    routes.iter().find_map(|r| r.matches(method, path).map(|p| (r, p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str) -> Route {
        Route { method: method.into(), path: path.into(), function: "f".into() }
    }

    #[test]
    fn parameters_are_captured() {
        let r = route("POST", "/sessions/{id}/turns");
        assert_eq!(r.matches("POST", "/sessions/abc/turns"), Some(vec![("id".into(), "abc".into())]));
        assert_eq!(r.matches("GET", "/sessions/abc/turns"), None);
        assert_eq!(r.matches("POST", "/sessions//turns"), None);
        assert_eq!(r.matches("POST", "/sessions/abc"), None);
    }

    #[test]
    fn literal_routes_win_over_parameters() {
        let mut routes = vec![route("DELETE", "/customers/{id}"), route("DELETE", "/customers/me")];
        routes.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        let (found, parameters) = find_route(&routes, "DELETE", "/customers/me").unwrap();
        assert_eq!(found.path, "/customers/me");
        assert!(parameters.is_empty());
    }

    #[test]
    fn the_project_template_routes_every_core_function() {
        let template = load(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
        let routes = http_routes(&template);
        for (method, path, function) in [
            ("POST", "/sessions", "create-session"),
            ("POST", "/sessions/{id}/turns", "append-turn"),
            ("GET", "/sessions/{id}/context", "load-context"),
        ] {
            assert!(
                routes.iter().any(|r| r.method == method && r.path == path && r.function == function),
                "{method} {path} missing"
            );
        }
    }
}
