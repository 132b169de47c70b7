//! A small, real GraphQL implementation for the fake Shopify Admin API (API_FACTS §1.1, §9):
//! a lexer and parser for executable documents (operations, variables with defaults, fields,
//! aliases, arguments of every value kind, nested selection sets, fragments and inline
//! fragments, directives), validation against a schema a store describes, the calculated query
//! cost Shopify's rate limits are based on (§1.7), and an executor that resolves only the
//! requested fields.
//!
//! Errors are worded the way Shopify's GraphQL server (graphql-ruby) words them, e.g.
//! `Parse error on "}" (RCURLY) at [1, 23]` or `Field 'foo' doesn't exist on type 'Shop'`.

mod exec;
mod lexer;
mod parser;

pub use exec::{
    execute, prepare, requested_cost, ExecOutcome, FieldDef, FieldError, FieldKind, GqlError, Page,
    Prepared, Resolved, Resolver, Schema,
};
pub use parser::{
    parse, Definition, Directive, Document, Field, Fragment, FragmentSpread, InlineFragment,
    Operation, OperationKind, ParseError, Pos, Selection, TypeRef, Value, VariableDefinition,
};
