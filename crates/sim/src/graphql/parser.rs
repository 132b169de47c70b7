//! The syntax tree of an executable GraphQL document and its recursive-descent parser
//! (GraphQL spec §2: operations, variable definitions with defaults, selection sets, fields
//! with aliases and arguments, fragment spreads, inline fragments, fragment definitions,
//! directives). Nesting is bounded so that no input can exhaust the stack.

use super::lexer::{tokenize, Tok, Token};

/// Deepest nesting of selection sets or values accepted.
const MAX_DEPTH: usize = 64;

/// Line and column (from 1) of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub pos: Pos,
}

impl ParseError {
    pub(crate) fn at(message: String, pos: Pos) -> Self {
        Self { message, pos }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub definitions: Vec<Definition>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Definition {
    Operation(Operation),
    Fragment(Fragment),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub kind: OperationKind,
    pub name: Option<String>,
    pub variables: Vec<VariableDefinition>,
    pub directives: Vec<Directive>,
    pub selection_set: Vec<Selection>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VariableDefinition {
    pub name: String,
    pub ty: TypeRef,
    pub default: Option<Value>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl std::fmt::Display for TypeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TypeRef::Named(name) => write!(f, "{name}"),
            TypeRef::List(inner) => write!(f, "[{inner}]"),
            TypeRef::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    pub name: String,
    pub type_condition: String,
    pub directives: Vec<Directive>,
    pub selection_set: Vec<Selection>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    Field(Field),
    FragmentSpread(FragmentSpread),
    InlineFragment(InlineFragment),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub alias: Option<String>,
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub directives: Vec<Directive>,
    pub selection_set: Vec<Selection>,
    pub pos: Pos,
}

impl Field {
    /// The key of this field in the response: its alias, else its name.
    pub fn response_key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FragmentSpread {
    pub name: String,
    pub directives: Vec<Directive>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InlineFragment {
    pub type_condition: Option<String>,
    pub directives: Vec<Directive>,
    pub selection_set: Vec<Selection>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub name: String,
    pub arguments: Vec<(String, Value)>,
    pub pos: Pos,
}

/// A value written in the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Variable(String),
    Int(i64),
    Float(f64),
    String(String),
    Boolean(bool),
    Null,
    Enum(String),
    List(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    /// The JSON of this value with variables replaced; an object key whose variable was not
    /// given is left out, so that "absent" stays distinct from `null`.
    pub fn to_json(
        &self,
        variables: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<serde_json::Value> {
        use serde_json::Value as J;
        Some(match self {
            Value::Variable(name) => return variables.get(name).cloned(),
            Value::Int(n) => J::from(*n),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::String(s) | Value::Enum(s) => J::String(s.clone()),
            Value::Boolean(b) => J::Bool(*b),
            Value::Null => J::Null,
            Value::List(items) => J::Array(
                items
                    .iter()
                    .map(|v| v.to_json(variables).unwrap_or(J::Null))
                    .collect(),
            ),
            Value::Object(fields) => J::Object(
                fields
                    .iter()
                    .filter_map(|(k, v)| v.to_json(variables).map(|j| (k.clone(), j)))
                    .collect(),
            ),
        })
    }

    /// Names of the variables this value uses.
    pub fn variables_used(&self, out: &mut Vec<String>) {
        match self {
            Value::Variable(name) => out.push(name.clone()),
            Value::List(items) => items.iter().for_each(|v| v.variables_used(out)),
            Value::Object(fields) => fields.iter().for_each(|(_, v)| v.variables_used(out)),
            _ => {}
        }
    }
}

/// Parses an executable document.
pub fn parse(source: &str) -> Result<Document, ParseError> {
    let tokens = tokenize(source)?;
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    parser.document()
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

type Parsed<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Token {
        let last = self.tokens.len() - 1;
        &self.tokens[self.at.min(last)]
    }

    fn bump(&mut self) -> Token {
        let token = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        token
    }

    fn is_punct(&self, p: &str) -> bool {
        matches!(&self.peek().tok, Tok::Punct(q) if *q == p)
    }

    fn is_name(&self, name: &str) -> bool {
        matches!(&self.peek().tok, Tok::Name(n) if n == name)
    }

    fn unexpected(&self) -> ParseError {
        let token = self.peek();
        let pos = token.pos;
        if token.tok == Tok::Eof {
            return ParseError::at("Unexpected end of document".to_owned(), pos);
        }
        let (text, kind) = token.tok.describe();
        ParseError::at(
            format!(
                "Parse error on \"{text}\" ({kind}) at [{}, {}]",
                pos.line, pos.column
            ),
            pos,
        )
    }

    fn expect(&mut self, p: &str) -> Parsed<Pos> {
        if self.is_punct(p) {
            Ok(self.bump().pos)
        } else {
            Err(self.unexpected())
        }
    }

    fn name(&mut self) -> Parsed<String> {
        match &self.peek().tok {
            Tok::Name(n) => {
                let n = n.clone();
                self.bump();
                Ok(n)
            }
            _ => Err(self.unexpected()),
        }
    }

    fn descend(&mut self) -> Parsed<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::at(
                "Parse error: document nested too deeply".to_owned(),
                self.peek().pos,
            ));
        }
        Ok(())
    }

    fn document(&mut self) -> Parsed<Document> {
        let mut definitions = Vec::new();
        while self.peek().tok != Tok::Eof {
            definitions.push(self.definition()?);
        }
        if definitions.is_empty() {
            return Err(self.unexpected());
        }
        Ok(Document { definitions })
    }

    fn definition(&mut self) -> Parsed<Definition> {
        if self.is_punct("{") {
            let pos = self.peek().pos;
            return Ok(Definition::Operation(Operation {
                kind: OperationKind::Query,
                name: None,
                variables: Vec::new(),
                directives: Vec::new(),
                selection_set: self.selection_set()?,
                pos,
            }));
        }
        if self.is_name("fragment") {
            return Ok(Definition::Fragment(self.fragment()?));
        }
        Ok(Definition::Operation(self.operation()?))
    }

    fn operation(&mut self) -> Parsed<Operation> {
        let pos = self.peek().pos;
        let kind = match &self.peek().tok {
            Tok::Name(n) if n == "query" => OperationKind::Query,
            Tok::Name(n) if n == "mutation" => OperationKind::Mutation,
            Tok::Name(n) if n == "subscription" => OperationKind::Subscription,
            _ => return Err(self.unexpected()),
        };
        self.bump();
        let name = match &self.peek().tok {
            Tok::Name(_) => Some(self.name()?),
            _ => None,
        };
        let variables = self.variable_definitions()?;
        let directives = self.directives()?;
        let selection_set = self.selection_set()?;
        Ok(Operation {
            kind,
            name,
            variables,
            directives,
            selection_set,
            pos,
        })
    }

    fn variable_definitions(&mut self) -> Parsed<Vec<VariableDefinition>> {
        let mut definitions = Vec::new();
        if !self.is_punct("(") {
            return Ok(definitions);
        }
        self.bump();
        while !self.is_punct(")") {
            let pos = self.expect("$")?;
            let name = self.name()?;
            self.expect(":")?;
            let ty = self.type_ref()?;
            let default = if self.is_punct("=") {
                self.bump();
                Some(self.value(true)?)
            } else {
                None
            };
            self.directives()?;
            definitions.push(VariableDefinition {
                name,
                ty,
                default,
                pos,
            });
        }
        self.bump();
        Ok(definitions)
    }

    fn type_ref(&mut self) -> Parsed<TypeRef> {
        self.descend()?;
        let inner = if self.is_punct("[") {
            self.bump();
            let inner = self.type_ref()?;
            self.expect("]")?;
            TypeRef::List(Box::new(inner))
        } else {
            TypeRef::Named(self.name()?)
        };
        self.depth -= 1;
        if self.is_punct("!") {
            self.bump();
            return Ok(TypeRef::NonNull(Box::new(inner)));
        }
        Ok(inner)
    }

    fn fragment(&mut self) -> Parsed<Fragment> {
        let pos = self.bump().pos;
        let name = self.name()?;
        if name == "on" || !self.is_name("on") {
            return Err(self.unexpected());
        }
        self.bump();
        let type_condition = self.name()?;
        let directives = self.directives()?;
        let selection_set = self.selection_set()?;
        Ok(Fragment {
            name,
            type_condition,
            directives,
            selection_set,
            pos,
        })
    }

    fn selection_set(&mut self) -> Parsed<Vec<Selection>> {
        self.expect("{")?;
        self.descend()?;
        let mut selections = Vec::new();
        while !self.is_punct("}") {
            selections.push(self.selection()?);
        }
        if selections.is_empty() {
            return Err(self.unexpected());
        }
        self.bump();
        self.depth -= 1;
        Ok(selections)
    }

    fn selection(&mut self) -> Parsed<Selection> {
        if !self.is_punct("...") {
            return Ok(Selection::Field(self.field()?));
        }
        let pos = self.bump().pos;
        if self.is_name("on") {
            self.bump();
            let type_condition = Some(self.name()?);
            return self.inline_fragment(type_condition, pos);
        }
        if matches!(self.peek().tok, Tok::Name(_)) {
            let name = self.name()?;
            let directives = self.directives()?;
            return Ok(Selection::FragmentSpread(FragmentSpread {
                name,
                directives,
                pos,
            }));
        }
        self.inline_fragment(None, pos)
    }

    fn inline_fragment(&mut self, type_condition: Option<String>, pos: Pos) -> Parsed<Selection> {
        let directives = self.directives()?;
        let selection_set = self.selection_set()?;
        Ok(Selection::InlineFragment(InlineFragment {
            type_condition,
            directives,
            selection_set,
            pos,
        }))
    }

    fn field(&mut self) -> Parsed<Field> {
        let pos = self.peek().pos;
        let first = self.name()?;
        let (alias, name) = if self.is_punct(":") {
            self.bump();
            (Some(first), self.name()?)
        } else {
            (None, first)
        };
        let arguments = self.arguments(false)?;
        let directives = self.directives()?;
        let selection_set = if self.is_punct("{") {
            self.selection_set()?
        } else {
            Vec::new()
        };
        Ok(Field {
            alias,
            name,
            arguments,
            directives,
            selection_set,
            pos,
        })
    }

    fn arguments(&mut self, constant: bool) -> Parsed<Vec<(String, Value)>> {
        let mut arguments = Vec::new();
        if !self.is_punct("(") {
            return Ok(arguments);
        }
        self.bump();
        while !self.is_punct(")") {
            let name = self.name()?;
            self.expect(":")?;
            arguments.push((name, self.value(constant)?));
        }
        if arguments.is_empty() {
            return Err(self.unexpected());
        }
        self.bump();
        Ok(arguments)
    }

    fn directives(&mut self) -> Parsed<Vec<Directive>> {
        let mut directives = Vec::new();
        while self.is_punct("@") {
            let pos = self.bump().pos;
            let name = self.name()?;
            let arguments = self.arguments(false)?;
            directives.push(Directive {
                name,
                arguments,
                pos,
            });
        }
        Ok(directives)
    }

    fn value(&mut self, constant: bool) -> Parsed<Value> {
        self.descend()?;
        let value = self.value_inner(constant)?;
        self.depth -= 1;
        Ok(value)
    }

    fn value_inner(&mut self, constant: bool) -> Parsed<Value> {
        let token = self.peek().clone();
        match token.tok {
            Tok::Punct("$") if !constant => {
                self.bump();
                Ok(Value::Variable(self.name()?))
            }
            Tok::Punct("[") => {
                self.bump();
                let mut items = Vec::new();
                while !self.is_punct("]") {
                    items.push(self.value(constant)?);
                }
                self.bump();
                Ok(Value::List(items))
            }
            Tok::Punct("{") => self.object_value(constant),
            Tok::Int(text) => {
                self.bump();
                text.parse().map(Value::Int).map_err(|_| self.unexpected())
            }
            Tok::Float(text) => {
                self.bump();
                text.parse()
                    .map(Value::Float)
                    .map_err(|_| self.unexpected())
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Value::String(s))
            }
            Tok::Name(n) => {
                self.bump();
                Ok(match n.as_str() {
                    "true" => Value::Boolean(true),
                    "false" => Value::Boolean(false),
                    "null" => Value::Null,
                    _ => Value::Enum(n),
                })
            }
            _ => Err(self.unexpected()),
        }
    }

    fn object_value(&mut self, constant: bool) -> Parsed<Value> {
        self.bump();
        let mut fields = Vec::new();
        while !self.is_punct("}") {
            let name = self.name()?;
            self.expect(":")?;
            fields.push((name, self.value(constant)?));
        }
        self.bump();
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_operation(doc: &Document) -> &Operation {
        match &doc.definitions[0] {
            Definition::Operation(op) => op,
            Definition::Fragment(_) => panic!("expected an operation"),
        }
    }

    #[test]
    fn parses_the_set_quantities_mutation() {
        let source = r#"mutation Set($input: InventorySetQuantitiesInput!, $first: Int = 10) {
            inventorySetQuantities(input: $input) @idempotent(key: "0c7e") {
              inventoryAdjustmentGroup { createdAt changes { name delta quantityAfterChange } }
              userErrors { field message code }
            }
          }"#;
        let doc = parse(source).unwrap();
        let op = only_operation(&doc);
        assert_eq!(op.kind, OperationKind::Mutation);
        assert_eq!(op.name.as_deref(), Some("Set"));
        assert_eq!(op.variables.len(), 2);
        assert_eq!(
            op.variables[0].ty.to_string(),
            "InventorySetQuantitiesInput!"
        );
        assert_eq!(op.variables[1].default, Some(Value::Int(10)));
        let Selection::Field(field) = &op.selection_set[0] else {
            panic!("field expected")
        };
        assert_eq!(field.name, "inventorySetQuantities");
        assert_eq!(field.directives[0].name, "idempotent");
        assert_eq!(
            field.directives[0].arguments[0].1,
            Value::String("0c7e".into())
        );
        assert_eq!(field.selection_set.len(), 2);
    }

    #[test]
    fn parses_values_aliases_fragments() {
        let source = r#"
          # a comment
          query {
            v: productVariants(first: 2, query: "sku:A*", reverse: false) {
              ...page
              nodes { ... on ProductVariant { id } ... @include(if: true) { sku } }
            }
            x: inventoryItem(id: "gid://shopify/InventoryItem/1") { id }
            list: f(a: [1, 2.5, -3e2, null, ENUM_VALUE, {k: "v\n\u0041"}], b: """
                block
              text""")
          }
          fragment page on ProductVariantConnection { pageInfo { hasNextPage endCursor } }
        "#;
        let doc = parse(source).unwrap();
        assert_eq!(doc.definitions.len(), 2);
        let op = only_operation(&doc);
        let Selection::Field(list) = &op.selection_set[2] else {
            panic!()
        };
        assert_eq!(list.alias.as_deref(), Some("list"));
        let Value::List(items) = &list.arguments[0].1 else {
            panic!()
        };
        assert_eq!(items[1], Value::Float(2.5));
        assert_eq!(items[2], Value::Float(-300.0));
        assert_eq!(items[4], Value::Enum("ENUM_VALUE".into()));
        assert_eq!(
            items[5],
            Value::Object(vec![("k".into(), Value::String("v\nA".into()))])
        );
        assert_eq!(list.arguments[1].1, Value::String("  block\ntext".into()));
    }

    #[test]
    fn reports_errors_like_graphql_ruby() {
        let error = parse("{ shop { name } ").unwrap_err();
        assert_eq!(error.message, "Unexpected end of document");
        let error = parse("query { shop { } }").unwrap_err();
        assert_eq!(error.message, "Parse error on \"}\" (RCURLY) at [1, 16]");
        let error = parse("query { a(x: $v) }").map(|_| ());
        assert!(error.is_ok(), "variables are allowed in field arguments");
        let error = parse("query($v: Int = $w) { a }").unwrap_err();
        assert!(error.message.contains("VAR_SIGN"), "{}", error.message);
        assert!(parse("{ a(x: \"unterminated) }").is_err());
        assert!(parse("{ a(x: 12abc) }").is_err());
    }

    #[test]
    fn bounds_nesting() {
        let deep = format!("{{ {} }}", "a { ".repeat(200) + &"}".repeat(200));
        assert!(parse(&deep).is_err());
        let deep_value = format!("{{ a(x: {}) }}", "[".repeat(500));
        assert!(parse(&deep_value).is_err());
    }
}
