//! The host's DynamoDB-JSON conversion (`host/src/dynamo_json.rs`, included
//! by path): parsing never panics, and what parses renders back to text that
//! parses to the same value (`docs/testing.md#fuzzing`).
#![no_main]

#[allow(dead_code)]
#[path = "../../../host/src/dynamo_json.rs"]
mod dynamo_json;

/// The one type `dynamo_json.rs` uses from the host's WIT bindings.
mod bindings {
    /// A named attribute value (compact DynamoDB JSON).
    #[derive(Debug, Clone)]
    pub struct Attribute {
        pub name: String,
        pub value: String,
    }
}

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // One value.
    if let Ok(av) = dynamo_json::to_attribute_value(text) {
        let json = dynamo_json::attribute_value_to_json(&av).to_string();
        let again = dynamo_json::to_attribute_value(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(av, again, "value does not round-trip through {json}");
        assert_eq!(json, dynamo_json::attribute_value_to_json(&again).to_string(), "rendering is not stable");
    }
    // An item: every member of a JSON object as one attribute.
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(text) {
        let attrs: Vec<bindings::Attribute> =
            m.iter().map(|(k, v)| bindings::Attribute { name: k.clone(), value: v.to_string() }).collect();
        if let Ok(item) = dynamo_json::attrs_to_map(&attrs) {
            assert_eq!(item.len(), attrs.len());
            let json = dynamo_json::item_to_json(&item);
            let back: serde_json::Value = serde_json::from_str(&json).expect("item_to_json renders JSON");
            let back = back.as_object().expect("an object");
            assert_eq!(back.len(), item.len());
            for (k, v) in back {
                let av = dynamo_json::value_to_attribute_value(v).unwrap_or_else(|e| panic!("{k}: {e}"));
                assert_eq!(&av, &item[k], "attribute {k} does not round-trip");
            }
        }
    }
});
