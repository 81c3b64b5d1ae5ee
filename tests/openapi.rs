//! `openapi.yaml` documents exactly the routes `template.yaml` deploys, each with its
//! responses and the shared error body.
use std::collections::BTreeSet;

use serde_yaml::Value;

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

/// `(METHOD, /path)` of every `HttpApi` event of every function in the template.
fn template_routes(template: &Value) -> BTreeSet<(String, String)> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .filter_map(|r| r["Properties"]["Events"].as_mapping())
        .flat_map(|events| events.values())
        .filter(|e| e["Type"].as_str() == Some("HttpApi"))
        .map(|e| {
            let method = e["Properties"]["Method"].as_str().expect("Method").to_uppercase();
            let path = e["Properties"]["Path"].as_str().expect("Path").to_owned();
            (method, path)
        })
        .collect()
}

fn operations(openapi: &Value) -> Vec<(String, String, &Value)> {
    let paths = openapi["paths"].as_mapping().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let path = path.as_str().expect("a path").to_owned();
            METHODS
                .iter()
                .filter_map(move |m| item.get(*m).map(|op| (m.to_uppercase(), path.clone(), op)))
        })
        .collect()
}

#[test]
fn openapi_routes_match_the_template_exactly() {
    let template = yaml(include_str!("../template.yaml"));
    let openapi = yaml(include_str!("../openapi.yaml"));

    let deployed = template_routes(&template);
    let documented: BTreeSet<_> = operations(&openapi).into_iter().map(|(m, p, _)| (m, p)).collect();

    assert!(!deployed.is_empty());
    let undocumented: Vec<_> = deployed.difference(&documented).collect();
    let not_deployed: Vec<_> = documented.difference(&deployed).collect();
    assert!(
        undocumented.is_empty() && not_deployed.is_empty(),
        "routes in template.yaml but not openapi.yaml: {undocumented:?}; in openapi.yaml but not template.yaml: {not_deployed:?}"
    );
}

#[test]
fn openapi_is_3_1_and_every_operation_documents_401_and_error_bodies() {
    let openapi = yaml(include_str!("../openapi.yaml"));
    assert!(openapi["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
    let codes: BTreeSet<&str> = openapi["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
        .as_sequence()
        .expect("Error.code enum")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let expected = [
        "bad_request", "unauthorized", "validation_failed", "too_large", "not_found", "conflict",
        "precondition_failed", "unavailable", "internal",
    ];
    assert_eq!(codes, expected.into_iter().collect());

    for (method, path, op) in operations(&openapi) {
        let responses = op["responses"].as_mapping().unwrap_or_else(|| panic!("{method} {path} has no responses"));
        assert!(op["operationId"].as_str().is_some(), "{method} {path} has no operationId");
        assert!(responses.contains_key("401"), "{method} {path} lacks 401");
        for (status, response) in responses {
            let status = status.as_str().unwrap_or_else(|| panic!("{method} {path}: quote status codes"));
            if status.starts_with('4') || status.starts_with('5') {
                let reference = response["$ref"].as_str().map(str::to_owned).unwrap_or_else(|| {
                    response["content"]["application/json"]["schema"]["$ref"].as_str().unwrap_or_default().to_owned()
                });
                assert!(
                    reference.starts_with("#/components/responses/") || reference == "#/components/schemas/Error",
                    "{method} {path} {status} must use the Error body"
                );
            }
        }
    }
}
