//! Tests of the executor against a toy schema: field resolution, merging, connections, cost,
//! and the validation errors Shopify words.

use serde_json::{json, Map, Value as Json};

use super::*;
use crate::graphql::parse;

struct Toy;

impl Schema for Toy {
    fn field(&self, type_name: &str, field: &str) -> Option<FieldDef> {
        let def = |kind, args| {
            Some(FieldDef {
                kind,
                args,
                required: &[],
                cost: None,
            })
        };
        match (type_name, field) {
            ("QueryRoot", "items") => def(FieldKind::Connection("Item"), &["first", "after"]),
            ("QueryRoot", "item") => def(FieldKind::Object("Item"), &["id"]),
            ("Item", "id" | "name" | "tags") => def(FieldKind::Scalar, &[]),
            ("Item", "parent") => def(FieldKind::Object("Item"), &[]),
            ("Item", "children") => def(FieldKind::List("Item"), &[]),
            ("Mutation", "rename") => Some(FieldDef {
                kind: FieldKind::Object("Payload"),
                args: &["id", "name"],
                required: &["id"],
                cost: Some(10),
            }),
            ("Payload", "item") => def(FieldKind::Object("Item"), &[]),
            _ => None,
        }
    }

    fn has_directive(&self, name: &str) -> bool {
        name == "idempotent"
    }

    fn root(&self, kind: OperationKind) -> Option<&'static str> {
        match kind {
            OperationKind::Query => Some("QueryRoot"),
            OperationKind::Mutation => Some("Mutation"),
            OperationKind::Subscription => None,
        }
    }
}

#[derive(Clone, Debug)]
enum Obj {
    Root,
    Item(u64),
}

struct Items;

impl Resolver for Items {
    type Obj = Obj;

    fn field(
        &self,
        obj: &Obj,
        name: &str,
        _key: &str,
        args: &Map<String, Json>,
    ) -> Result<Resolved<Obj>, FieldError> {
        match (obj, name) {
            (Obj::Root, "items") => {
                let first = args.get("first").and_then(Json::as_u64).unwrap_or(0);
                let edges = (1..=first.min(3))
                    .map(|i| (format!("c{i}"), Obj::Item(i)))
                    .collect();
                Ok(Resolved::Connection(Page {
                    edges,
                    has_next_page: first < 3,
                    has_previous_page: false,
                }))
            }
            (Obj::Root, "item") => match args.get("id").and_then(Json::as_str) {
                Some("bad") => Err(FieldError::with_code("Invalid id", "BAD")),
                Some(_) => Ok(Resolved::Object(Some(Obj::Item(7)))),
                None => Ok(Resolved::Object(None)),
            },
            (Obj::Root, "rename") => Ok(Resolved::Object(Some(Obj::Item(1)))),
            (Obj::Item(id), "item") => Ok(Resolved::Object(Some(Obj::Item(*id)))),
            (Obj::Item(id), "id") => Ok(Resolved::Value(json!(id))),
            (Obj::Item(id), "name") => Ok(Resolved::Value(json!(format!("item {id}")))),
            (Obj::Item(_), "tags") => Ok(Resolved::Value(json!(["a", "b"]))),
            (Obj::Item(id), "parent") => Ok(Resolved::Object((*id > 1).then(|| Obj::Item(id - 1)))),
            (Obj::Item(id), "children") => Ok(Resolved::List(vec![
                Obj::Item(id * 10),
                Obj::Item(id * 10 + 1),
            ])),
            _ => Err(FieldError::new("no such field")),
        }
    }
}

fn run(source: &str, variables: Json) -> Result<(ExecOutcome, u64), Vec<GqlError>> {
    let document = parse(source).expect("parses");
    let variables = variables.as_object().cloned().unwrap_or_default();
    let prepared = prepare(&Toy, &document, None, variables)?;
    let cost = requested_cost(&Toy, &prepared);
    Ok((execute(&Toy, &prepared, &Items, Obj::Root), cost))
}

fn messages(errors: &[GqlError]) -> Vec<String> {
    errors.iter().map(|e| e.message.clone()).collect()
}

#[test]
fn resolves_only_requested_fields_with_aliases_and_fragments() {
    let (outcome, _) = run(
        r#"query Q($id: ID = "x", $withName: Boolean!) {
            a: item(id: $id) { id ...named parent { __typename id } }
            b: item(id: "y") { id @skip(if: true) tags }
            c: item { id }
          }
          fragment named on Item { name @include(if: $withName) }"#,
        json!({"withName": true}),
    )
    .unwrap();
    assert_eq!(
        outcome.data,
        json!({
            "a": {"id": 7, "name": "item 7", "parent": {"__typename": "Item", "id": 6}},
            "b": {"tags": ["a", "b"]},
            "c": null
        })
    );
    assert!(outcome.errors.is_empty());
}

#[test]
fn merges_fields_with_the_same_response_key() {
    let (outcome, _) = run(
        "{ item(id: \"1\") { id } item(id: \"1\") { name } }",
        json!({}),
    )
    .unwrap();
    assert_eq!(outcome.data, json!({"item": {"id": 7, "name": "item 7"}}));
}

#[test]
fn completes_connections_edges_nodes_and_page_info() {
    let (outcome, requested) = run(
        "{ items(first: 10) { edges { cursor node { id } } nodes { id parent { id } } pageInfo { hasNextPage endCursor startCursor } } }",
        json!({}),
    )
    .unwrap();
    let items = &outcome.data["items"];
    assert_eq!(
        items["edges"][2],
        json!({"cursor": "c3", "node": {"id": 3}})
    );
    assert_eq!(items["nodes"][0], json!({"id": 1, "parent": null}));
    assert_eq!(
        items["pageInfo"],
        json!({"hasNextPage": false, "endCursor": "c3", "startCursor": "c1"})
    );
    // 2 + 10 × (edges.node 1 + nodes 1 + parent 1)
    assert_eq!(requested, 32);
    // 2 + 3 edge nodes + 3 nodes + 2 parents
    assert_eq!(outcome.actual_cost, 10);
}

#[test]
fn mutation_fields_have_their_fixed_cost() {
    let (outcome, requested) = run(
        "mutation { rename(id: 1, name: \"x\") @idempotent(key: \"k\") { item { id children { id } } } }",
        json!({}),
    )
    .unwrap();
    assert_eq!(requested, 10);
    assert_eq!(outcome.actual_cost, 10);
    assert_eq!(
        outcome.data["rename"]["item"]["children"][1]["id"],
        json!(11)
    );
}

#[test]
fn field_errors_null_the_field_and_carry_a_path() {
    let (outcome, _) = run(
        "{ ok: item(id: \"1\") { id } bad: item(id: \"bad\") { id } }",
        json!({}),
    )
    .unwrap();
    assert_eq!(outcome.data["bad"], Json::Null);
    assert_eq!(outcome.errors[0].path, Some(vec![json!("bad")]));
    assert_eq!(outcome.errors[0].to_json()["extensions"]["code"], "BAD");
}

#[test]
fn validation_errors_are_worded_like_shopify() {
    let errors = run(
        "query Q($unused: Int) { item(id: $missing, nope: 1) { idd } shop { name } items { edges } }",
        json!({}),
    )
    .unwrap_err();
    let messages = messages(&errors);
    assert!(
        messages.contains(&"Field 'item' doesn't accept argument 'nope'".to_owned()),
        "{messages:?}"
    );
    assert!(messages.contains(&"Field 'idd' doesn't exist on type 'Item'".to_owned()));
    assert!(messages.contains(&"Field 'shop' doesn't exist on type 'QueryRoot'".to_owned()));
    assert!(messages
        .iter()
        .any(|m| m.starts_with("Field must have selections (field 'edges'")));
    assert!(messages.contains(&"Variable $missing is used by Q but not declared".to_owned()));
    assert!(messages.contains(&"Variable $unused is declared by Q but not used".to_owned()));
    assert_eq!(errors[0].to_json()["locations"][0]["line"], 1);
}

#[test]
fn rejects_bad_fragments_directives_and_missing_variables() {
    let errors = run("{ item(id: \"1\") { ...nope id @foo } }", json!({})).unwrap_err();
    let messages = messages(&errors);
    assert!(messages.contains(&"Fragment nope was used, but not defined".to_owned()));
    assert!(messages.contains(&"Directive @foo is not defined".to_owned()));
    let errors = run("query($id: ID!) { item(id: $id) { id } }", json!({})).unwrap_err();
    assert_eq!(
        errors[0].message,
        "Variable $id of type ID! was provided invalid value"
    );
    let errors = run(
        "{ item(id: \"1\") { ...a } } fragment a on Item { ...a }",
        json!({}),
    )
    .unwrap_err();
    assert!(messages_contain(&errors, "infinite loop"));
    let errors = run(
        "{ item(id: \"1\") { ... on Payload { item { id } } } }",
        json!({}),
    )
    .unwrap_err();
    assert!(messages_contain(&errors, "can't be spread inside Item"));
    let errors = run(
        "mutation { rename(name: \"x\") { item { id } } }",
        json!({}),
    )
    .unwrap_err();
    assert!(messages_contain(
        &errors,
        "Field 'rename' is missing required arguments: id"
    ));
    let errors = run("{ item(id: \"1\") { id { x } } }", json!({})).unwrap_err();
    assert!(messages_contain(
        &errors,
        "Selections can't be made on scalars"
    ));
}

fn messages_contain(errors: &[GqlError], needle: &str) -> bool {
    errors.iter().any(|e| e.message.contains(needle))
}

#[test]
fn picks_the_named_operation() {
    let document = parse("query A { item(id: \"1\") { id } } query B { c: item { id } }").unwrap();
    assert!(prepare(&Toy, &document, None, Map::new()).is_err());
    let prepared = prepare(&Toy, &document, Some("B"), Map::new()).unwrap();
    assert_eq!(
        execute(&Toy, &prepared, &Items, Obj::Root).data,
        json!({"c": null})
    );
    assert!(prepare(&Toy, &document, Some("C"), Map::new()).is_err());
}

#[test]
fn absent_variables_stay_absent_in_objects() {
    let document = parse("query($a: Int, $b: Int) { rename(id: {x: $a, y: $b}) { item { id } } }");
    assert!(document.is_ok());
    let value = crate::graphql::Value::Object(vec![
        ("x".into(), crate::graphql::Value::Variable("a".into())),
        ("y".into(), crate::graphql::Value::Variable("b".into())),
    ]);
    let mut variables = Map::new();
    variables.insert("b".into(), Json::Null);
    assert_eq!(value.to_json(&variables), Some(json!({"y": null})));
}

#[test]
fn fragment_fan_out_is_bounded() {
    let mut source = String::from("{ item(id: \"1\") { ...f0 } }\n");
    for level in 0..20 {
        let next = format!("f{}", level + 1);
        source.push_str(&format!(
            "fragment f{level} on Item {{ a: parent {{ ...{next} }} b: parent {{ ...{next} }} }}\n"
        ));
    }
    source.push_str("fragment f20 on Item { id }\n");
    let errors = run(&source, json!({})).unwrap_err();
    assert!(messages_contain(&errors, "more than 20000 fields"));
}
