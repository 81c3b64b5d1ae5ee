//! The template, the workspace and the sample events agree with each other.
use std::path::Path;

use tidewater_local::template;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn project_template() -> serde_yaml::Value {
    template::load(root().join("template.yaml")).unwrap()
}

#[test]
fn every_route_is_served_by_a_function_of_the_template() {
    let template = project_template();
    let binaries: Vec<String> = template::functions(&template).into_iter().map(|(_, _, b)| b).collect();

    let routes = template::http_routes(&template);

    assert!(routes.len() >= 3);
    for route in routes {
        assert!(binaries.contains(&route.function), "{} {} has no function", route.method, route.path);
    }
}

#[test]
fn every_function_has_a_binary_in_the_workspace_and_a_sample_event() {
    let template = project_template();
    let events: Vec<String> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();

    for (id, _, binary) in template::functions(&template) {
        let manifest = std::fs::read_to_string(root().join("functions").join(&binary).join("Cargo.toml"))
            .unwrap_or_else(|_| panic!("{id}: functions/{binary}/Cargo.toml is missing"));
        assert!(manifest.contains(&format!("name = \"{binary}\"")), "{id}: no binary named {binary}");
        let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
        assert!(workspace.contains(&format!("\"functions/{binary}\"")), "{id}: not a workspace member");
        assert!(
            events.iter().any(|e| e.starts_with(&binary) && e.ends_with(".json")),
            "{id}: no events/{binary}*.json sample"
        );
    }
}

#[test]
fn every_function_declares_its_build_and_a_policy_without_wildcards() {
    let template = project_template();
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();

    assert!(!text.contains("DynamoDBCrudPolicy"));
    for (id, properties, _) in template::functions(&template) {
        assert!(properties.get("Policies").is_some(), "{id} has no policy of its own");
        let mut wildcards = Vec::new();
        wildcard_statements(&properties["Policies"], None, &mut wildcards);
        for (actions, condition) in wildcards {
            // Such an action takes no resource-level permission, and is granted only when chosen.
            assert!(
                actions.iter().all(|a| ACTIONS_WITHOUT_RESOURCES.contains(&a.as_str())),
                "{id} grants {actions:?} on every resource"
            );
            assert_eq!(condition.as_deref(), Some("UseComprehend"), "{id} grants {actions:?} unconditionally");
        }
    }
}

/// Actions that take no resource-level permissions: `"*"` is the only resource they accept.
const ACTIONS_WITHOUT_RESOURCES: &[&str] = &["comprehend:DetectPiiEntities"];

/// The actions of every statement whose `Resource` is `"*"`, with the condition of the
/// `!If` it sits in, if any.
fn wildcard_statements(value: &serde_yaml::Value, condition: Option<String>, found: &mut Vec<(Vec<String>, Option<String>)>) {
    use serde_yaml::Value;
    match value {
        Value::Mapping(map) => {
            if map.get("Resource").and_then(Value::as_str) == Some("*") {
                let actions = match map.get("Action") {
                    Some(Value::String(a)) => vec![a.clone()],
                    Some(Value::Sequence(list)) => list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
                    _ => Vec::new(),
                };
                found.push((actions, condition.clone()));
            }
            map.values().for_each(|v| wildcard_statements(v, condition.clone(), found));
        }
        Value::Sequence(list) => list.iter().for_each(|v| wildcard_statements(v, condition.clone(), found)),
        Value::Tagged(tagged) if tagged.tag == "If" => {
            let name = tagged.value.as_sequence().and_then(|s| s.first()).and_then(Value::as_str).map(str::to_owned);
            wildcard_statements(&tagged.value, name, found);
        }
        Value::Tagged(tagged) => wildcard_statements(&tagged.value, condition, found),
        _ => {}
    }
}

#[test]
fn the_redacting_functions_get_the_redaction_settings() {
    let template = project_template();
    for (id, properties, binary) in template::functions(&template) {
        let variables = &properties["Environment"]["Variables"];
        let redacts = ["create-session", "append-turn", "update-session"].contains(&binary.as_str());
        for name in ["REDACT", "REDACTOR"] {
            assert_eq!(variables.get(name).is_some(), redacts, "{id}: {name}");
        }
    }
}

/// The Secrets Manager secret each function reads at init, as (variable, secret logical id).
const SECRETS: &[(&str, &str)] = &[("CURSOR_SECRET_ARN", "CursorSecret"), ("RECEIPT_SALT_ARN", "ReceiptSalt")];

#[test]
fn secrets_reach_only_their_functions_by_arn_and_are_readable_by_them_alone() {
    let template = project_template();
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    assert!(!text.contains("resolve:secretsmanager"), "a secret's value must never be resolved into the configuration");

    for (id, properties, binary) in template::functions(&template) {
        let variables = properties.get("Environment").and_then(|e| e.get("Variables"));
        let held: Vec<&str> = SECRETS
            .iter()
            .filter_map(|(variable, secret)| {
                let value = variables?.get(*variable)?;
                assert_eq!(serde_yaml::to_string(value).unwrap().trim(), format!("!Ref {secret}"), "{id}: {variable}");
                Some(*secret)
            })
            .collect();
        let statements: Vec<&serde_yaml::Value> = properties["Policies"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|policy| policy.get("Statement")?.as_sequence())
            .flatten()
            .collect();
        let readable: Vec<String> = statements
            .iter()
            .filter(|s| serde_yaml::to_string(&s["Action"]).unwrap().contains("secretsmanager:"))
            .map(|s| {
                assert_eq!(serde_yaml::to_string(&s["Action"]).unwrap().trim(), "- secretsmanager:GetSecretValue", "{id}");
                serde_yaml::to_string(&s["Resource"]).unwrap().trim().to_owned()
            })
            .collect();
        let expected: Vec<String> = held.iter().map(|secret| format!("!Ref {secret}")).collect();
        assert_eq!(readable, expected, "{id} may read exactly the secrets it is given");

        let manifest = std::fs::read_to_string(root().join("functions").join(&binary).join("Cargo.toml")).unwrap();
        assert_eq!(manifest.contains("\"secrets\""), !held.is_empty(), "{id}: links the Secrets Manager client iff it holds a secret");
    }
}
