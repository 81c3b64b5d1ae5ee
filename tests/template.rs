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
const SECRETS: &[(&str, &str)] =
    &[("CURSOR_SECRET_ARN", "CursorSecret"), ("RECEIPT_SALT_ARN", "ReceiptSalt"), ("HASH_KEY_ARN", "HashKey")];

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
                assert_eq!(serde_yaml::to_string(value).unwrap().trim(), by_arn(secret), "{id}: {variable}");
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
        let expected: Vec<String> = held.iter().map(|secret| by_arn(secret)).collect();
        assert_eq!(readable, expected, "{id} may read exactly the secrets it is given");

        let manifest = std::fs::read_to_string(root().join("functions").join(&binary).join("Cargo.toml")).unwrap();
        assert_eq!(manifest.contains("\"secrets\""), !held.is_empty(), "{id}: links the Secrets Manager client iff it holds a secret");
    }
}

/// How a function names `secret`: the one this stack made, or, in a stack given the owning
/// stack's (one that does not own the table), that one's replica in this region (parameter
/// `<secret>Arn`).
fn by_arn(secret: &str) -> String {
    format!("!If\n- OwnsSecrets\n- !Ref {secret}\n- !Ref {secret}Arn")
}

#[test]
fn a_stack_without_the_table_takes_the_owning_stacks_replicated_secrets() {
    let template = project_template();
    for (_, secret) in SECRETS {
        let resource = resource(&template, secret);
        assert_eq!(resource["Condition"].as_str(), Some("OwnsSecrets"), "{secret}");
        assert!(spelled(&template["Conditions"]["OwnsSecrets"]).contains(&format!("!Ref {secret}Arn")), "{secret}");
        let replicas = spelled(&resource["Properties"]["ReplicaRegions"]);
        assert!(replicas.contains("HasReplica") && replicas.contains("!Ref ReplicaRegion"), "{secret}: {replicas}");
        assert_eq!(template["Parameters"][format!("{secret}Arn")]["Default"].as_str(), Some(""), "{secret}Arn");
        assert_eq!(spelled(&template["Outputs"][format!("{secret}Arn")]["Value"]), format!("!Ref {secret}"));
        let rule = spelled(&template["Rules"]["SharedSecretsWithoutTheTable"]);
        assert!(rule.contains("!Ref TableStreamArn") && rule.contains("!Ref Regions"), "{rule}");
        assert!(rule.contains(&format!("!Ref {secret}Arn")), "a stack without the table must be given {secret}Arn");
    }
}

/// A value as the template spells it, tags included (`!Ref X`), on one line.
fn spelled(value: &serde_yaml::Value) -> String {
    serde_yaml::to_string(value).unwrap().trim().to_owned()
}

/// Every statement of a function's policies, the ones inside `!If` included.
fn statements(properties: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    fn walk<'a>(value: &'a serde_yaml::Value, found: &mut Vec<&'a serde_yaml::Value>) {
        match value {
            serde_yaml::Value::Mapping(map) if map.contains_key("Effect") => found.push(value),
            serde_yaml::Value::Mapping(map) => map.values().for_each(|v| walk(v, found)),
            serde_yaml::Value::Sequence(list) => list.iter().for_each(|v| walk(v, found)),
            serde_yaml::Value::Tagged(tagged) => walk(&tagged.value, found),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&properties["Policies"], &mut found);
    found
}

fn resource<'a>(template: &'a serde_yaml::Value, id: &str) -> &'a serde_yaml::Value {
    template["Resources"].get(id).unwrap_or_else(|| panic!("no resource {id}"))
}

/// The key prefixes (or, as `JANITOR`, exact keys) each function works in
/// (shared/src/keys.rs); for list-sessions, the customer index's.
const PARTITIONS: &[(&str, &[&str])] = &[
    ("create-session", &["SESSION#*", "PRIVACY#*", "CUST#*", "GUEST#*"]),
    ("append-turn", &["SESSION#*", "CUST#*", "GUEST#*"]),
    ("load-context", &["SESSION#*", "MEMORY#*", "CUST#*", "GUEST#*"]),
    ("summarize", &["SESSION#*", "MEMORY#*", "CUST#*", "GUEST#*"]),
    ("sweep-expired", &["SESSION#*", "PRIVACY#*", "JANITOR"]),
    ("janitor", &["SESSION#*", "PRIVACY#*", "RECEIPT#*", "MEMORY#*", "JANITOR", "GUEST", "GUEST#*", "CUST#*"]),
    ("update-session", &["SESSION#*", "CUST#*", "GUEST#*"]),
    ("list-sessions", &["CUSTOMER#*", "CUST#*"]),
    ("export-turns", &["SESSION#*", "CUST#*", "GUEST#*"]),
    ("delete-session", &["SESSION#*", "PRIVACY#*", "JANITOR"]),
    ("purge-customer", &["SESSION#*", "PRIVACY#*", "RECEIPT#*", "MEMORY#*", "JANITOR", "CUST#*"]),
    ("list-memory", &["MEMORY#*", "CUST#*", "GUEST#*"]),
    ("delete-memory", &["MEMORY#*"]),
    ("get-receipt", &["RECEIPT#*"]),
];

#[test]
fn every_function_reaches_only_the_partitions_it_uses() {
    let template = project_template();
    for (id, properties, binary) in template::functions(&template) {
        let mut reached: Vec<String> = Vec::new();
        for statement in statements(properties) {
            if !spelled(&statement["Action"]).contains("dynamodb:") {
                continue;
            }
            let leading = statement
                .get("Condition")
                .and_then(|c| c.get("ForAllValues:StringLike"))
                .and_then(|c| c.get("dynamodb:LeadingKeys"))
                .and_then(|keys| keys.as_sequence())
                .unwrap_or_else(|| panic!("{id}: a DynamoDB statement without a LeadingKeys condition"));
            for prefix in leading {
                let prefix = prefix.as_str().unwrap().to_owned();
                let exact_key = !prefix.contains('*');
                assert!(exact_key || (prefix.ends_with("#*") && !prefix[..prefix.len() - 2].contains('*')), "{id}: {prefix}");
                if !reached.contains(&prefix) {
                    reached.push(prefix);
                }
            }
        }
        if let Some((_, expected)) = PARTITIONS.iter().find(|(name, _)| *name == binary) {
            reached.sort();
            let mut expected: Vec<String> = expected.iter().map(|p| p.to_string()).collect();
            expected.sort();
            assert_eq!(reached, expected, "{id}");
        }
    }
}

#[test]
fn the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() {
    let template = project_template();
    let topic = resource(&template, "AlarmTopic");
    let key_ref = spelled(&topic["Properties"]["KmsMasterKeyId"]);
    let key_id = key_ref.strip_prefix("!Ref ").unwrap_or_else(|| panic!("the topic's key is {key_ref}, not a key of ours"));
    let key = resource(&template, key_id);
    assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
    let grants = key["Properties"]["KeyPolicy"]["Statement"].as_sequence().unwrap().iter().any(|statement| {
        let actions = spelled(&statement["Action"]);
        statement["Effect"].as_str() == Some("Allow")
            && statement["Principal"]["Service"].as_str() == Some("cloudwatch.amazonaws.com")
            && actions.contains("kms:Decrypt")
            && actions.contains("kms:GenerateDataKey")
    });
    assert!(grants, "the key's policy must let CloudWatch encrypt to the topic");
    let alarms = template["Resources"].as_mapping().unwrap().iter().filter(|(_, r)| r["Type"].as_str() == Some("AWS::CloudWatch::Alarm"));
    for (id, alarm) in alarms {
        assert_eq!(spelled(&alarm["Properties"]["AlarmActions"]), "- !Ref AlarmTopic", "{id:?}");
    }
}

#[test]
fn every_log_group_keeps_logs_for_the_retention_parameter() {
    let template = project_template();
    let functions_log_to = spelled(&template["Globals"]["Function"]["LoggingConfig"]["LogGroup"]);
    let groups: Vec<(String, &serde_yaml::Value)> = template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Logs::LogGroup"))
        .map(|(id, r)| (id.as_str().unwrap().to_owned(), r))
        .collect();
    assert!(groups.iter().any(|(id, _)| functions_log_to == format!("!Ref {id}")), "functions log to {functions_log_to}");
    for (id, group) in &groups {
        assert_eq!(spelled(&group["Properties"]["RetentionInDays"]), "!Ref LogRetentionDays", "{id}");
    }
    for (id, properties, _) in template::functions(&template) {
        assert!(properties.get("LoggingConfig").is_none(), "{id} must log where the others do");
    }
}

#[test]
fn the_table_cannot_be_deleted_by_accident() {
    let template = project_template();
    let table = resource(&template, "SessionsTable");
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    for replica in replicas(table) {
        assert_eq!(replica["DeletionProtectionEnabled"].as_bool(), Some(true), "{replica:?}");
        assert_eq!(replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
    }
}

/// The replicas of the global table, the optional second one (inside `!If`) included.
fn replicas(table: &serde_yaml::Value) -> Vec<&serde_yaml::Value> {
    let listed = table["Properties"]["Replicas"].as_sequence().expect("a global table lists its replicas");
    listed
        .iter()
        .map(|replica| match replica {
            serde_yaml::Value::Tagged(tagged) => &tagged.value[1],
            plain => plain,
        })
        .collect()
}

#[test]
fn the_table_is_a_global_table_in_eventual_mode_with_every_feature_of_the_single_region_one() {
    let template = project_template();
    let table = resource(&template, "SessionsTable");
    let properties = &table["Properties"];
    // MREC: MRSC has no transactions and no TTL, and would need MultiRegionConsistency: STRONG.
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::GlobalTable"));
    assert!(properties.get("MultiRegionConsistency").is_none_or(|mode| mode.as_str() == Some("EVENTUAL")));
    assert_eq!(properties["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    assert_eq!(properties["StreamSpecification"]["StreamViewType"].as_str(), Some("NEW_AND_OLD_IMAGES"));
    assert_eq!(properties["TimeToLiveSpecification"]["AttributeName"].as_str(), Some("ttl"));
    assert_eq!(properties["GlobalSecondaryIndexes"][0]["IndexName"].as_str(), Some("GSI1"));
    assert_eq!(properties["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    // One replica in the stack's region, and a second from the ReplicaRegion parameter.
    let regions: Vec<String> = replicas(table).iter().map(|replica| spelled(&replica["Region"])).collect();
    assert_eq!(regions, ["!Ref AWS::Region", "!Ref ReplicaRegion"]);
    // A stack that does not own the table reads its own replica's stream.
    for (id, properties, _) in template::functions(&template) {
        for (_, event) in properties.get("Events").and_then(|e| e.as_mapping()).into_iter().flatten() {
            if event["Type"].as_str() == Some("DynamoDB") {
                let stream = spelled(&event["Properties"]["Stream"]);
                assert!(stream.contains("OwnsTable") && stream.contains("TableStreamArn"), "{id}: {stream}");
            }
        }
    }
}

#[test]
fn the_api_is_throttled_and_the_stream_consumers_have_concurrency_of_their_own() {
    let template = project_template();
    let api = &resource(&template, "HttpApi")["Properties"];
    let default = &api["DefaultRouteSettings"];
    assert_eq!(spelled(&default["ThrottlingRateLimit"]), "!Ref ApiRateLimit");
    assert_eq!(spelled(&default["ThrottlingBurstLimit"]), "!Ref ApiBurstLimit");
    // The routes that run Comprehend or a purge, or lead to Bedrock, have limits of their own.
    for (route, rate, burst) in [
        ("POST /sessions", "WriteRateLimit", "WriteBurstLimit"),
        ("PATCH /sessions/{id}", "WriteRateLimit", "WriteBurstLimit"),
        ("POST /sessions/{id}/turns", "WriteRateLimit", "WriteBurstLimit"),
        ("DELETE /customers/me", "PurgeRateLimit", "PurgeBurstLimit"),
        ("DELETE /customers/{id}", "PurgeRateLimit", "PurgeBurstLimit"),
    ] {
        let settings = &api["RouteSettings"][route];
        assert_eq!(spelled(&settings["ThrottlingRateLimit"]), format!("!Ref {rate}"), "{route}");
        assert_eq!(spelled(&settings["ThrottlingBurstLimit"]), format!("!Ref {burst}"), "{route}");
        let (method, path) = route.split_once(' ').unwrap();
        assert!(template::http_routes(&template).iter().any(|r| r.method == method && r.path == path), "{route} is not a route");
    }
    for (id, parameter) in [("SummarizeFunction", "SummarizeReservedConcurrency"), ("SweepExpiredFunction", "SweepReservedConcurrency")] {
        let reserved = spelled(&resource(&template, id)["Properties"]["ReservedConcurrentExecutions"]);
        assert!(reserved.contains(&format!("!Ref {parameter}")), "{id}: {reserved}");
        assert!(template["Parameters"].get(parameter).is_some(), "{parameter}");
    }
}

#[test]
fn every_http_function_forwards_to_the_home_region_within_its_own_timeout() {
    let template = project_template();
    let globals = &template["Globals"]["Function"];
    let variables = &globals["Environment"]["Variables"];
    assert_eq!(spelled(&variables["REGION_APIS"]), "!Ref RegionApis");
    assert_eq!(template["Parameters"]["RegionApis"]["Default"].as_str(), Some(""), "one region needs none");
    let milliseconds = |value: &serde_yaml::Value| value.as_str().and_then(|ms| ms.parse::<u64>().ok());
    let default_ms = milliseconds(&variables["FORWARD_TIMEOUT_MS"]).expect("FORWARD_TIMEOUT_MS");
    let http_functions: Vec<String> = template::http_routes(&template).into_iter().map(|route| route.function).collect();
    for (id, properties, binary) in template::functions(&template) {
        let main = std::fs::read_to_string(root().join("functions").join(&binary).join("src/main.rs")).unwrap();
        let hops = main.contains("forwarding::run");
        assert_eq!(hops, http_functions.contains(&binary), "{id}: an HTTP function runs through the hop, and only one");
        if hops {
            // A read whose home does not answer in time is still served here, stale, before the
            // function times out: a second at least.
            let timeout = properties["Timeout"].as_u64().or(globals["Timeout"].as_u64()).expect("a timeout");
            let forward_ms = milliseconds(&properties["Environment"]["Variables"]["FORWARD_TIMEOUT_MS"]).unwrap_or(default_ms);
            assert!(forward_ms + 1_000 <= timeout * 1_000, "{id}: {forward_ms} ms to forward in {timeout} s");
            // Below API Gateway's 30 s integration limit, in the home and here.
            assert!(forward_ms < 29_000, "{id}: {forward_ms} ms to forward");
            if binary == "purge-customer" {
                // A purge at its home waits out key leases after its calls: its hop outlasts that.
                let waited = (tidewater::crypto::MAX_KEY_LEASE + tidewater::store::KEY_LEASE_MARGIN).as_millis() as u64;
                assert!(forward_ms >= waited + 5_000, "{id}: {forward_ms} ms to forward a purge that waits {waited} ms");
                assert_eq!(forward_ms, tidewater::forwarding::PURGE_FORWARD_TIMEOUT.as_millis() as u64, "{id}: as locally");
            }
            assert!(properties["Environment"]["Variables"].get("REGION_APIS").is_none(), "{id} overrides REGION_APIS");
        }
    }
}
