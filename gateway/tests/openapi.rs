//! The committed OpenAPI document (`openapi/lockgate.json`) is the one the
//! code generates. When this fails, regenerate it with
//! `cargo run -p lockgate -- openapi > openapi/lockgate.json` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn committed_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/lockgate.json");
    let committed = std::fs::read_to_string(path).unwrap();
    let generated = lockgate::api::openapi_json();
    assert!(
        committed == generated,
        "openapi/lockgate.json is stale: run `cargo run -p lockgate -- openapi > openapi/lockgate.json`"
    );
}

#[test]
fn every_operation_documents_its_responses_and_integers_are_bounded() {
    let doc: serde_json::Value = serde_json::from_str(&lockgate::api::openapi_json()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/v1/ledger/transactions"));
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path} has no responses");
            for (status, response) in responses {
                assert!(
                    response["description"].is_string(),
                    "{method} {path} {status} lacks a description"
                );
            }
        }
    }
    // Every integer in a schema has bounds, so fuzzers and clients know the range.
    each_object(&doc, "", &mut |map, at| {
        let is_integer = map.get("type").is_some_and(|t| {
            t == "integer"
                || t.as_array()
                    .is_some_and(|a| a.iter().any(|x| x == "integer"))
        });
        if is_integer {
            assert!(
                map.contains_key("minimum") && map.contains_key("maximum"),
                "unbounded integer at {at}"
            );
        }
    });
}

/// Calls `check` on every object in `value`, with its JSON pointer.
fn each_object(
    value: &serde_json::Value,
    at: &str,
    check: &mut impl FnMut(&serde_json::Map<String, serde_json::Value>, &str),
) {
    match value {
        serde_json::Value::Object(map) => {
            check(map, at);
            for (k, v) in map {
                each_object(v, &format!("{at}/{k}"), check);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                each_object(v, &format!("{at}/{i}"), check);
            }
        }
        _ => {}
    }
}

/// Every operation behind a token names the scope it needs, and only scopes
/// the gateway knows; an int32 never claims a maximum beyond 2^31-1.
#[test]
fn secured_operations_name_known_scopes() {
    let doc: serde_json::Value = serde_json::from_str(&lockgate::api::openapi_json()).unwrap();
    let known: Vec<&str> = lockgate::auth::Scope::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    let mut secured = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(requirements) = operation["security"].as_array() else {
                continue;
            };
            for requirement in requirements {
                let Some(scopes) = requirement.get("bearer") else {
                    continue;
                };
                secured += 1;
                let scopes = scopes.as_array().unwrap();
                assert_eq!(
                    scopes.len(),
                    1,
                    "{method} {path}: one scope per alternative"
                );
                let scope = scopes[0].as_str().unwrap();
                assert!(
                    known.contains(&scope),
                    "{method} {path}: unknown scope {scope}"
                );
            }
        }
    }
    assert!(secured > 30, "only {secured} secured requirements");
    each_object(&doc, "", &mut |map, at| {
        if map.get("format").is_some_and(|f| f == "int32") {
            let max = map.get("maximum").and_then(serde_json::Value::as_i64);
            assert!(
                max.is_some_and(|m| m <= i64::from(i32::MAX)),
                "int32 with maximum {max:?} at {at}"
            );
        }
    });
}
