//! Validation, cost and execution of a parsed GraphQL request against a store's schema.
//!
//! The schema is described by the store as a table of fields per type ([`Schema`]); Relay
//! connections (`edges { cursor node }`, `nodes`, `pageInfo`) are built in. The calculated cost
//! follows Shopify's published rules (API_FACTS §1.7, shopify.dev "GraphQL Admin API rate
//! limits"): scalars and enums 0, objects 1, connections 2 plus `first`/`last` times the cost of
//! one node, a mutation field its fixed cost (10). The requested cost is computed before
//! running; the actual cost counts what was returned.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use serde_json::{json, Map, Value as Json};

use super::parser::{
    Definition, Directive, Document, Field, Fragment, Operation, OperationKind, Pos, Selection,
    TypeRef,
};

/// What a field returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A scalar, an enum, or a list of either.
    Scalar,
    /// One object of the named type (or null).
    Object(&'static str),
    /// A list of objects of the named type.
    List(&'static str),
    /// A Relay connection of the named node type.
    Connection(&'static str),
}

/// One field of a type in a store's schema.
#[derive(Debug, Clone, Copy)]
pub struct FieldDef {
    pub kind: FieldKind,
    /// The arguments the field accepts.
    pub args: &'static [&'static str],
    /// The arguments it requires.
    pub required: &'static [&'static str],
    /// A fixed cost replacing the computed one (Shopify: 10 for a mutation).
    pub cost: Option<u64>,
}

/// A store's schema: the fields of each type, and the directives it accepts besides
/// `@skip` and `@include`.
pub trait Schema {
    fn field(&self, type_name: &str, field: &str) -> Option<FieldDef>;
    fn has_directive(&self, name: &str) -> bool;
    /// The root type of an operation kind, if the store supports it.
    fn root(&self, kind: OperationKind) -> Option<&'static str>;
}

/// An error in the `errors` list of a response.
#[derive(Debug, Clone, PartialEq)]
pub struct GqlError {
    pub message: String,
    pub locations: Vec<Pos>,
    pub path: Option<Vec<Json>>,
    pub extensions: Option<Json>,
}

impl GqlError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            locations: Vec::new(),
            path: None,
            extensions: None,
        }
    }

    fn at(mut self, pos: Pos) -> Self {
        self.locations.push(pos);
        self
    }

    fn with_extensions(mut self, extensions: Json) -> Self {
        self.extensions = Some(extensions);
        self
    }

    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        out.insert("message".into(), Json::String(self.message.clone()));
        if !self.locations.is_empty() {
            let locations = self
                .locations
                .iter()
                .map(|p| json!({"line": p.line, "column": p.column}))
                .collect();
            out.insert("locations".into(), Json::Array(locations));
        }
        if let Some(path) = &self.path {
            out.insert("path".into(), Json::Array(path.clone()));
        }
        if let Some(extensions) = &self.extensions {
            out.insert("extensions".into(), extensions.clone());
        }
        Json::Object(out)
    }
}

/// An error a resolver raises for one field; the field becomes null.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub message: String,
    pub extensions: Option<Json>,
}

impl FieldError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            extensions: None,
        }
    }

    pub fn with_code(message: impl Into<String>, code: &str) -> Self {
        Self {
            message: message.into(),
            extensions: Some(json!({ "code": code })),
        }
    }
}

/// One page of a connection, as a resolver returns it.
#[derive(Debug, Clone)]
pub struct Page<O> {
    pub edges: Vec<(String, O)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

/// What a resolver returns for a field.
#[derive(Debug, Clone)]
pub enum Resolved<O> {
    Value(Json),
    Object(Option<O>),
    List(Vec<O>),
    Connection(Page<O>),
}

/// A store's resolvers: for each object, the value of a requested field.
pub trait Resolver {
    type Obj: Clone;
    fn field(
        &self,
        obj: &Self::Obj,
        name: &str,
        response_key: &str,
        args: &Map<String, Json>,
    ) -> Result<Resolved<Self::Obj>, FieldError>;
}

/// A validated request: its operation, fragments and coerced variables.
#[derive(Debug)]
pub struct Prepared<'d> {
    pub operation: &'d Operation,
    pub root_type: &'static str,
    pub variables: Map<String, Json>,
    fragments: HashMap<&'d str, &'d Fragment>,
}

impl Prepared<'_> {
    /// The root fields of the operation as they will run (skip/include applied).
    pub fn root_fields(&self) -> Vec<(String, Vec<&Field>)> {
        collect_fields(self, self.root_type, &self.operation.selection_set)
    }

    /// The arguments of a field with variables replaced.
    pub fn arguments(&self, field: &Field) -> Map<String, Json> {
        arguments_json(&field.arguments, &self.variables)
    }

    /// The arguments of a directive with variables replaced.
    pub fn directive_arguments(&self, directive: &Directive) -> Map<String, Json> {
        arguments_json(&directive.arguments, &self.variables)
    }
}

fn arguments_json(
    arguments: &[(String, super::Value)],
    variables: &Map<String, Json>,
) -> Map<String, Json> {
    arguments
        .iter()
        .filter_map(|(name, value)| value.to_json(variables).map(|v| (name.clone(), v)))
        .collect()
}

/// Picks the operation, coerces the variables and validates the document against `schema`.
pub fn prepare<'d>(
    schema: &dyn Schema,
    document: &'d Document,
    operation_name: Option<&str>,
    variables: Map<String, Json>,
) -> Result<Prepared<'d>, Vec<GqlError>> {
    let operation = select_operation(document, operation_name).map_err(|e| vec![e])?;
    let root_type = schema.root(operation.kind).ok_or_else(|| {
        vec![GqlError::new("Schema is not configured for subscriptions").at(operation.pos)]
    })?;
    let fragments = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Fragment(f) => Some((f.name.as_str(), f)),
            Definition::Operation(_) => None,
        })
        .collect();
    let mut prepared = Prepared {
        operation,
        root_type,
        variables: Map::new(),
        fragments,
    };
    let mut errors = Vec::new();
    Validator {
        schema,
        prepared: &prepared,
        errors: &mut errors,
        fragment_stack: Vec::new(),
        field_nodes: 0,
    }
    .validate();
    if !errors.is_empty() {
        return Err(errors);
    }
    prepared.variables = coerce_variables(operation, variables)?;
    Ok(prepared)
}

fn select_operation<'d>(
    document: &'d Document,
    name: Option<&str>,
) -> Result<&'d Operation, GqlError> {
    let operations: Vec<&Operation> = document
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::Operation(op) => Some(op),
            Definition::Fragment(_) => None,
        })
        .collect();
    match name {
        Some(name) => operations
            .into_iter()
            .find(|op| op.name.as_deref() == Some(name))
            .ok_or_else(|| GqlError::new(format!("No operation named \"{name}\""))),
        None if operations.len() == 1 => Ok(operations[0]),
        None if operations.is_empty() => Err(GqlError::new("No operations in this document")),
        None => Err(GqlError::new(
            "An operation name is required when a document contains more than one operation",
        )),
    }
}

fn operation_label(op: &Operation) -> String {
    let kind = match op.kind {
        OperationKind::Query => "query",
        OperationKind::Mutation => "mutation",
        OperationKind::Subscription => "subscription",
    };
    op.name
        .clone()
        .unwrap_or_else(|| format!("anonymous {kind}"))
}

fn coerce_variables(
    op: &Operation,
    provided: Map<String, Json>,
) -> Result<Map<String, Json>, Vec<GqlError>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for definition in &op.variables {
        let value = match provided.get(&definition.name) {
            Some(v) => Some(v.clone()),
            None => definition
                .default
                .as_ref()
                .and_then(|d| d.to_json(&Map::new())),
        };
        let non_null = matches!(definition.ty, TypeRef::NonNull(_));
        if non_null && value.as_ref().is_none_or(Json::is_null) {
            errors.push(
                GqlError::new(format!(
                    "Variable ${} of type {} was provided invalid value",
                    definition.name, definition.ty
                ))
                .at(definition.pos)
                .with_extensions(json!({
                    "value": null,
                    "problems": [{"path": [], "explanation": "Expected value to not be null"}]
                })),
            );
            continue;
        }
        if let Some(value) = value {
            out.insert(definition.name.clone(), value);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The static type a selection set is read against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Named(&'static str),
    Conn(&'static str),
    Edge(&'static str),
    PageInfo,
}

impl Ty {
    fn name(self) -> String {
        match self {
            Ty::Named(t) => t.to_owned(),
            Ty::Conn(t) => format!("{t}Connection"),
            Ty::Edge(t) => format!("{t}Edge"),
            Ty::PageInfo => "PageInfo".to_owned(),
        }
    }
}

/// What a field leads to, read from the schema or the built-in connection types.
#[derive(Debug, Clone, Copy)]
struct Step {
    child: Option<Ty>,
    args: &'static [&'static str],
    required: &'static [&'static str],
    cost: Option<u64>,
    connection: bool,
}

fn scalar_step() -> Step {
    Step {
        child: None,
        args: &[],
        required: &[],
        cost: None,
        connection: false,
    }
}

fn step(schema: &dyn Schema, ty: Ty, name: &str) -> Option<Step> {
    if name == "__typename" {
        return Some(scalar_step());
    }
    let child = |child| Step {
        child: Some(child),
        ..scalar_step()
    };
    match ty {
        Ty::Named(t) => schema.field(t, name).map(|def| Step {
            child: match def.kind {
                FieldKind::Scalar => None,
                FieldKind::Object(o) | FieldKind::List(o) => Some(Ty::Named(o)),
                FieldKind::Connection(o) => Some(Ty::Conn(o)),
            },
            args: def.args,
            required: def.required,
            cost: def.cost,
            connection: matches!(def.kind, FieldKind::Connection(_)),
        }),
        Ty::Conn(t) => match name {
            "edges" => Some(child(Ty::Edge(t))),
            "nodes" => Some(child(Ty::Named(t))),
            "pageInfo" => Some(child(Ty::PageInfo)),
            _ => None,
        },
        Ty::Edge(t) => match name {
            "cursor" => Some(scalar_step()),
            "node" => Some(child(Ty::Named(t))),
            _ => None,
        },
        Ty::PageInfo => matches!(
            name,
            "hasNextPage" | "hasPreviousPage" | "startCursor" | "endCursor"
        )
        .then(scalar_step),
    }
}

/// Most field selections a document may expand to, fragments included; bounds the work of
/// validating, costing and running a request.
const MAX_FIELD_NODES: usize = 20_000;

struct Validator<'a, 'd> {
    schema: &'a dyn Schema,
    prepared: &'a Prepared<'d>,
    errors: &'a mut Vec<GqlError>,
    fragment_stack: Vec<String>,
    field_nodes: usize,
}

impl Validator<'_, '_> {
    fn validate(&mut self) {
        let op = self.prepared.operation;
        self.directives(&op.directives);
        self.selection_set(Ty::Named(self.prepared.root_type), &op.selection_set);
        self.variables_declared_and_used();
    }

    fn selection_set(&mut self, ty: Ty, selections: &[Selection]) {
        for selection in selections {
            match selection {
                Selection::Field(field) => self.field(ty, field),
                Selection::FragmentSpread(spread) => {
                    self.directives(&spread.directives);
                    let Some(fragment) = self.prepared.fragments.get(spread.name.as_str()).copied()
                    else {
                        self.errors.push(
                            GqlError::new(format!("Fragment {} was used, but not defined", spread.name))
                                .at(spread.pos)
                                .with_extensions(json!({"code": "useAndDefineFragment", "fragmentName": spread.name})),
                        );
                        continue;
                    };
                    if self.fragment_stack.contains(&fragment.name) {
                        self.errors.push(
                            GqlError::new(format!(
                                "Fragment {} contains an infinite loop",
                                fragment.name
                            ))
                            .at(spread.pos)
                            .with_extensions(json!({"code": "infiniteLoop"})),
                        );
                        continue;
                    }
                    self.fragment_stack.push(fragment.name.clone());
                    self.condition(ty, Some(&fragment.type_condition), spread.pos);
                    self.directives(&fragment.directives);
                    self.selection_set(ty, &fragment.selection_set);
                    self.fragment_stack.pop();
                }
                Selection::InlineFragment(inline) => {
                    self.condition(ty, inline.type_condition.as_deref(), inline.pos);
                    self.directives(&inline.directives);
                    self.selection_set(ty, &inline.selection_set);
                }
            }
        }
    }

    fn condition(&mut self, ty: Ty, condition: Option<&str>, pos: Pos) {
        let Some(condition) = condition else { return };
        if condition != ty.name() {
            self.errors.push(
                GqlError::new(format!(
                    "Fragment on {condition} can't be spread inside {}",
                    ty.name()
                ))
                .at(pos)
                .with_extensions(json!({"code": "cannotSpreadFragment"})),
            );
        }
    }

    fn field(&mut self, ty: Ty, field: &Field) {
        self.field_nodes += 1;
        if self.field_nodes > MAX_FIELD_NODES {
            if self.field_nodes == MAX_FIELD_NODES + 1 {
                let message = format!(
                    "Query has more than {MAX_FIELD_NODES} fields once fragments are expanded"
                );
                self.errors.push(
                    GqlError::new(message)
                        .at(field.pos)
                        .with_extensions(json!({"code": "tooManyFields"})),
                );
            }
            return;
        }
        self.directives(&field.directives);
        let Some(step) = step(self.schema, ty, &field.name) else {
            self.errors.push(
                GqlError::new(format!(
                    "Field '{}' doesn't exist on type '{}'",
                    field.name,
                    ty.name()
                ))
                .at(field.pos)
                .with_extensions(json!({"code": "undefinedField", "typeName": ty.name(), "fieldName": field.name})),
            );
            return;
        };
        self.arguments(step, field);
        match (step.child, field.selection_set.is_empty()) {
            (Some(child), true) => self.errors.push(
                GqlError::new(format!(
                    "Field must have selections (field '{}' returns {} but has no selections. Did you mean '{} {{ ... }}'?)",
                    field.name,
                    child.name(),
                    field.name
                ))
                .at(field.pos)
                .with_extensions(json!({"code": "selectionMismatch", "nodeName": field.name, "typeName": child.name()})),
            ),
            (None, false) => self.errors.push(
                GqlError::new(format!(
                    "Selections can't be made on scalars (field '{}' returns a scalar but has selections)",
                    field.name
                ))
                .at(field.pos)
                .with_extensions(json!({"code": "selectionMismatch", "nodeName": field.name})),
            ),
            (Some(child), false) => self.selection_set(child, &field.selection_set),
            (None, true) => {}
        }
    }

    /// Arguments not accepted, and required arguments missing.
    fn arguments(&mut self, step: Step, field: &Field) {
        for (name, _) in &field.arguments {
            if !step.args.contains(&name.as_str()) {
                self.errors.push(
                    GqlError::new(format!("Field '{}' doesn't accept argument '{name}'", field.name))
                        .at(field.pos)
                        .with_extensions(json!({"code": "argumentNotAccepted", "name": field.name, "typeName": "Field", "argumentName": name})),
                );
            }
        }
        let missing: Vec<&str> = step
            .required
            .iter()
            .copied()
            .filter(|r| !field.arguments.iter().any(|(name, _)| name == r))
            .collect();
        if !missing.is_empty() {
            self.errors.push(
                GqlError::new(format!(
                    "Field '{}' is missing required arguments: {}",
                    field.name,
                    missing.join(", ")
                ))
                .at(field.pos)
                .with_extensions(json!({"code": "missingRequiredArguments", "className": "Field", "name": field.name, "arguments": missing.join(", ")})),
            );
        }
    }

    fn directives(&mut self, directives: &[Directive]) {
        for directive in directives {
            let known = matches!(directive.name.as_str(), "skip" | "include")
                || self.schema.has_directive(&directive.name);
            if !known {
                self.errors.push(
                    GqlError::new(format!("Directive @{} is not defined", directive.name))
                        .at(directive.pos)
                        .with_extensions(
                            json!({"code": "undefinedDirective", "directiveName": directive.name}),
                        ),
                );
            }
        }
    }

    fn variables_declared_and_used(&mut self) {
        let op = self.prepared.operation;
        let mut used = Vec::new();
        let mut seen = HashSet::new();
        variables_in(&op.selection_set, self.prepared, &mut used, &mut seen);
        op.directives.iter().for_each(|d| {
            d.arguments
                .iter()
                .for_each(|(_, v)| v.variables_used(&mut used))
        });
        let declared: HashSet<&str> = op.variables.iter().map(|v| v.name.as_str()).collect();
        let label = operation_label(op);
        let mut reported = HashSet::new();
        for name in &used {
            if !declared.contains(name.as_str()) && reported.insert(name.clone()) {
                self.errors.push(
                    GqlError::new(format!(
                        "Variable ${name} is used by {label} but not declared"
                    ))
                    .at(op.pos)
                    .with_extensions(json!({"code": "variableNotDefined", "variableName": name})),
                );
            }
        }
        for definition in &op.variables {
            if !used.contains(&definition.name) {
                self.errors.push(
                    GqlError::new(format!(
                        "Variable ${} is declared by {label} but not used",
                        definition.name
                    ))
                    .at(definition.pos)
                    .with_extensions(
                        json!({"code": "variableNotUsed", "variableName": definition.name}),
                    ),
                );
            }
        }
    }
}

fn variables_in(
    selections: &[Selection],
    prepared: &Prepared<'_>,
    out: &mut Vec<String>,
    seen: &mut HashSet<String>,
) {
    let from_directives = |directives: &[Directive], out: &mut Vec<String>| {
        for d in directives {
            d.arguments.iter().for_each(|(_, v)| v.variables_used(out));
        }
    };
    for selection in selections {
        match selection {
            Selection::Field(field) => {
                field
                    .arguments
                    .iter()
                    .for_each(|(_, v)| v.variables_used(out));
                from_directives(&field.directives, out);
                variables_in(&field.selection_set, prepared, out, seen);
            }
            Selection::FragmentSpread(spread) => {
                from_directives(&spread.directives, out);
                if !seen.insert(spread.name.clone()) {
                    continue;
                }
                if let Some(fragment) = prepared.fragments.get(spread.name.as_str()) {
                    from_directives(&fragment.directives, out);
                    variables_in(&fragment.selection_set, prepared, out, seen);
                }
            }
            Selection::InlineFragment(inline) => {
                from_directives(&inline.directives, out);
                variables_in(&inline.selection_set, prepared, out, seen);
            }
        }
    }
}

/// True unless `@skip(if: true)` or `@include(if: false)`.
fn included(directives: &[Directive], variables: &Map<String, Json>) -> bool {
    directives.iter().all(|d| {
        let condition = d
            .arguments
            .iter()
            .find(|(name, _)| name == "if")
            .and_then(|(_, v)| v.to_json(variables))
            .and_then(|v| v.as_bool());
        match d.name.as_str() {
            "skip" => condition != Some(true),
            "include" => condition != Some(false),
            _ => true,
        }
    })
}

/// The fields of a selection set by response key, fragments expanded and merged (GraphQL spec
/// "CollectFields"); validation already checked type conditions.
fn collect_fields<'d>(
    prepared: &Prepared<'d>,
    type_name: &str,
    selections: &'d [Selection],
) -> Vec<(String, Vec<&'d Field>)> {
    let mut out: Vec<(String, Vec<&'d Field>)> = Vec::new();
    collect_into(
        prepared,
        type_name,
        selections,
        &mut out,
        &mut HashSet::new(),
    );
    out
}

fn collect_into<'d>(
    prepared: &Prepared<'d>,
    type_name: &str,
    selections: &'d [Selection],
    out: &mut Vec<(String, Vec<&'d Field>)>,
    visited: &mut HashSet<&'d str>,
) {
    for selection in selections {
        match selection {
            Selection::Field(field) => {
                if !included(&field.directives, &prepared.variables) {
                    continue;
                }
                let key = field.response_key();
                match out.iter_mut().find(|(k, _)| k == key) {
                    Some((_, fields)) => fields.push(field),
                    None => out.push((key.to_owned(), vec![field])),
                }
            }
            Selection::FragmentSpread(spread) => {
                if !included(&spread.directives, &prepared.variables) {
                    continue;
                }
                let Some(fragment) = prepared.fragments.get(spread.name.as_str()).copied() else {
                    continue;
                };
                if fragment.type_condition != type_name || !visited.insert(fragment.name.as_str()) {
                    continue;
                }
                collect_into(prepared, type_name, &fragment.selection_set, out, visited);
            }
            Selection::InlineFragment(inline) => {
                let applies = inline
                    .type_condition
                    .as_deref()
                    .is_none_or(|c| c == type_name);
                if applies && included(&inline.directives, &prepared.variables) {
                    collect_into(prepared, type_name, &inline.selection_set, out, visited);
                }
            }
        }
    }
}

/// Sub-selections of merged fields, concatenated (borrowed when there is one field).
fn merged_selections<'d>(fields: &[&'d Field]) -> Cow<'d, [Selection]> {
    match fields {
        [one] => Cow::Borrowed(one.selection_set.as_slice()),
        _ => Cow::Owned(
            fields
                .iter()
                .flat_map(|f| f.selection_set.iter().cloned())
                .collect(),
        ),
    }
}

/// The cost Shopify computes before running a request.
pub fn requested_cost(schema: &dyn Schema, prepared: &Prepared<'_>) -> u64 {
    let selections = &prepared.operation.selection_set;
    selection_cost(schema, prepared, Ty::Named(prepared.root_type), selections)
}

fn selection_cost(
    schema: &dyn Schema,
    prepared: &Prepared<'_>,
    ty: Ty,
    selections: &[Selection],
) -> u64 {
    collect_fields(prepared, &ty.name(), selections)
        .into_iter()
        .map(|(_, fields)| {
            let Some(step) = step(schema, ty, &fields[0].name) else {
                return 0;
            };
            if let Some(cost) = step.cost {
                return cost;
            }
            let Some(child) = step.child else { return 0 };
            let inner = selection_cost(schema, prepared, child, &merged_selections(&fields));
            if step.connection {
                let args = prepared.arguments(fields[0]);
                let size = ["first", "last"]
                    .iter()
                    .find_map(|k| args.get(*k).and_then(Json::as_u64))
                    .unwrap_or(0);
                return size.saturating_mul(inner).saturating_add(2);
            }
            match child {
                Ty::Named(_) => inner.saturating_add(1),
                Ty::Conn(_) | Ty::Edge(_) | Ty::PageInfo => inner,
            }
        })
        .fold(0u64, u64::saturating_add)
}

/// The result of running a request.
#[derive(Debug)]
pub struct ExecOutcome {
    pub data: Json,
    pub errors: Vec<GqlError>,
    pub actual_cost: u64,
}

/// A value being completed: a store object or one of the built-in connection parts.
enum Node<O> {
    Obj(O),
    Conn(Rc<Page<O>>),
    Edge(String, O),
    PageInfo(Rc<Page<O>>),
}

struct Run<'a, 'd, R: Resolver> {
    schema: &'a dyn Schema,
    prepared: &'a Prepared<'d>,
    resolver: &'a R,
    errors: Vec<GqlError>,
    path: Vec<Json>,
    cost: u64,
    fixed_cost_depth: u32,
}

/// Runs a prepared request from `root`, resolving only the requested fields.
pub fn execute<R: Resolver>(
    schema: &dyn Schema,
    prepared: &Prepared<'_>,
    resolver: &R,
    root: R::Obj,
) -> ExecOutcome {
    let mut run = Run {
        schema,
        prepared,
        resolver,
        errors: Vec::new(),
        path: Vec::new(),
        cost: 0,
        fixed_cost_depth: 0,
    };
    let selections = &prepared.operation.selection_set;
    let data = run.node(Node::Obj(root), Ty::Named(prepared.root_type), selections);
    ExecOutcome {
        data,
        errors: run.errors,
        actual_cost: run.cost,
    }
}

impl<R: Resolver> Run<'_, '_, R> {
    fn charge(&mut self, amount: u64) {
        if self.fixed_cost_depth == 0 {
            self.cost += amount;
        }
    }

    fn node(&mut self, node: Node<R::Obj>, ty: Ty, selections: &[Selection]) -> Json {
        let mut out = Map::new();
        let prepared = self.prepared;
        for (key, fields) in collect_fields(prepared, &ty.name(), selections) {
            self.path.push(Json::String(key.clone()));
            let value = self.field(&node, ty, &key, &fields);
            self.path.pop();
            out.insert(key, value);
        }
        Json::Object(out)
    }

    fn field(&mut self, node: &Node<R::Obj>, ty: Ty, key: &str, fields: &[&Field]) -> Json {
        let field = fields[0];
        if field.name == "__typename" {
            return Json::String(ty.name());
        }
        let Some(step) = step(self.schema, ty, &field.name) else {
            return Json::Null;
        };
        let selections = merged_selections(fields);
        match node {
            Node::Obj(obj) => self.object_field(obj, step, key, field, &selections),
            Node::Conn(page) => self.connection_field(page, ty, &field.name, &selections),
            Node::Edge(cursor, obj) => match field.name.as_str() {
                "cursor" => Json::String(cursor.clone()),
                _ => self.complete_object(obj.clone(), step, &selections),
            },
            Node::PageInfo(page) => page_info(page, &field.name),
        }
    }

    fn object_field(
        &mut self,
        obj: &R::Obj,
        step: Step,
        key: &str,
        field: &Field,
        selections: &[Selection],
    ) -> Json {
        let args = self.prepared.arguments(field);
        let resolved = match self.resolver.field(obj, &field.name, key, &args) {
            Ok(resolved) => resolved,
            Err(error) => {
                self.errors.push(GqlError {
                    message: error.message,
                    locations: vec![field.pos],
                    path: Some(self.path.clone()),
                    extensions: error.extensions,
                });
                return Json::Null;
            }
        };
        if let Some(cost) = step.cost {
            self.charge(cost);
            self.fixed_cost_depth += 1;
        }
        let value = self.complete(resolved, step, selections);
        if step.cost.is_some() {
            self.fixed_cost_depth -= 1;
        }
        value
    }

    fn complete(
        &mut self,
        resolved: Resolved<R::Obj>,
        step: Step,
        selections: &[Selection],
    ) -> Json {
        match (resolved, step.child) {
            (Resolved::Value(value), _) => value,
            (Resolved::Object(None), _) => Json::Null,
            (Resolved::Object(Some(obj)), Some(_)) => self.complete_object(obj, step, selections),
            (Resolved::List(items), Some(_)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, obj) in items.into_iter().enumerate() {
                    self.path.push(Json::from(i));
                    out.push(self.complete_object(obj, step, selections));
                    self.path.pop();
                }
                Json::Array(out)
            }
            (Resolved::Connection(page), Some(child)) => {
                self.charge(2);
                self.node(Node::Conn(Rc::new(page)), child, selections)
            }
            _ => Json::Null,
        }
    }

    fn complete_object(&mut self, obj: R::Obj, step: Step, selections: &[Selection]) -> Json {
        let Some(child) = step.child else {
            return Json::Null;
        };
        self.charge(1);
        self.node(Node::Obj(obj), child, selections)
    }

    fn connection_field(
        &mut self,
        page: &Rc<Page<R::Obj>>,
        ty: Ty,
        name: &str,
        selections: &[Selection],
    ) -> Json {
        let Ty::Conn(node_type) = ty else {
            return Json::Null;
        };
        match name {
            "edges" => {
                let edges = page
                    .edges
                    .iter()
                    .enumerate()
                    .map(|(i, (cursor, obj))| {
                        self.path.push(Json::from(i));
                        let edge = Node::Edge(cursor.clone(), obj.clone());
                        let value = self.node(edge, Ty::Edge(node_type), selections);
                        self.path.pop();
                        value
                    })
                    .collect();
                Json::Array(edges)
            }
            "nodes" => {
                let nodes = page
                    .edges
                    .iter()
                    .enumerate()
                    .map(|(i, (_, obj))| {
                        self.path.push(Json::from(i));
                        self.charge(1);
                        let value =
                            self.node(Node::Obj(obj.clone()), Ty::Named(node_type), selections);
                        self.path.pop();
                        value
                    })
                    .collect();
                Json::Array(nodes)
            }
            _ => self.node(Node::PageInfo(page.clone()), Ty::PageInfo, selections),
        }
    }
}

fn page_info<O>(page: &Page<O>, name: &str) -> Json {
    match name {
        "hasNextPage" => Json::Bool(page.has_next_page),
        "hasPreviousPage" => Json::Bool(page.has_previous_page),
        "startCursor" => page
            .edges
            .first()
            .map_or(Json::Null, |(c, _)| Json::String(c.clone())),
        _ => page
            .edges
            .last()
            .map_or(Json::Null, |(c, _)| Json::String(c.clone())),
    }
}

#[cfg(test)]
mod tests;
