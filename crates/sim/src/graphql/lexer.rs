//! Tokens of a GraphQL document (GraphQL spec §2.1): punctuators, names, numbers, strings and
//! block strings; white space, commas and comments are ignored.

use super::parser::{ParseError, Pos};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Punct(&'static str),
    Name(String),
    Int(String),
    Float(String),
    Str(String),
    Eof,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

impl Tok {
    /// graphql-ruby's name of a token, for error messages.
    pub(crate) fn describe(&self) -> (String, &'static str) {
        match self {
            Tok::Punct(p) => (p.to_string(), punct_name(p)),
            Tok::Name(n) => (n.clone(), keyword_name(n)),
            Tok::Int(n) => (n.clone(), "INT"),
            Tok::Float(n) => (n.clone(), "FLOAT"),
            Tok::Str(s) => (s.clone(), "STRING"),
            Tok::Eof => (String::new(), "EOF"),
        }
    }
}

fn punct_name(p: &str) -> &'static str {
    match p {
        "{" => "LCURLY",
        "}" => "RCURLY",
        "(" => "LPAREN",
        ")" => "RPAREN",
        "[" => "LBRACKET",
        "]" => "RBRACKET",
        ":" => "COLON",
        "=" => "EQUALS",
        "@" => "DIR_SIGN",
        "$" => "VAR_SIGN",
        "!" => "BANG",
        "..." => "ELLIPSIS",
        "|" => "PIPE",
        "&" => "AMP",
        _ => "UNKNOWN",
    }
}

fn keyword_name(name: &str) -> &'static str {
    match name {
        "query" => "QUERY",
        "mutation" => "MUTATION",
        "subscription" => "SUBSCRIPTION",
        "fragment" => "FRAGMENT",
        "on" => "ON",
        "true" => "TRUE",
        "false" => "FALSE",
        "null" => "NULL",
        _ => "IDENTIFIER",
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    at: usize,
    line: usize,
    line_start: usize,
    _source: &'a str,
}

/// The tokens of `source`, ending with `Eof`.
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        at: 0,
        line: 1,
        line_start: 0,
        _source: source,
    };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.tok == Tok::Eof;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.at - self.line_start + 1,
        }
    }

    fn peek(&self, offset: usize) -> Option<char> {
        self.chars.get(self.at + offset).copied()
    }

    fn newline(&mut self) {
        self.line += 1;
        self.line_start = self.at;
    }

    fn skip_ignored(&mut self) {
        while let Some(c) = self.peek(0) {
            match c {
                '\n' => {
                    self.at += 1;
                    self.newline();
                }
                ' ' | '\t' | '\r' | ',' | '\u{feff}' => self.at += 1,
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_ignored();
        let pos = self.pos();
        let Some(c) = self.peek(0) else {
            return Ok(Token { tok: Tok::Eof, pos });
        };
        let tok = match c {
            '{' | '}' | '(' | ')' | '[' | ']' | ':' | '=' | '@' | '$' | '!' | '|' | '&' => {
                self.at += 1;
                Tok::Punct(punct(c))
            }
            '.' if self.peek(1) == Some('.') && self.peek(2) == Some('.') => {
                self.at += 3;
                Tok::Punct("...")
            }
            '"' => self.string(pos)?,
            c if c == '_' || c.is_ascii_alphabetic() => self.name(),
            c if c == '-' || c.is_ascii_digit() => self.number(pos)?,
            other => {
                return Err(ParseError::at(
                    format!(
                        "Parse error on \"{other}\" (error) at [{}, {}]",
                        pos.line, pos.column
                    ),
                    pos,
                ))
            }
        };
        Ok(Token { tok, pos })
    }

    fn name(&mut self) -> Tok {
        let start = self.at;
        while self
            .peek(0)
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        {
            self.at += 1;
        }
        Tok::Name(self.chars[start..self.at].iter().collect())
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        let start = self.at;
        if self.peek(0) == Some('-') {
            self.at += 1;
        }
        let mut float = false;
        let whole = self.digits();
        if self.peek(0) == Some('.') {
            self.at += 1;
            float = true;
            if self.digits() == 0 {
                return Err(bad_number(pos));
            }
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            self.at += 1;
            float = true;
            if matches!(self.peek(0), Some('+' | '-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(bad_number(pos));
            }
        }
        if whole == 0
            || self
                .peek(0)
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        {
            return Err(bad_number(pos));
        }
        let text: String = self.chars[start..self.at].iter().collect();
        Ok(if float {
            Tok::Float(text)
        } else {
            Tok::Int(text)
        })
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        if self.peek(1) == Some('"') && self.peek(2) == Some('"') {
            return self.block_string(pos);
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            match self.peek(0) {
                None | Some('\n') => return Err(unterminated(pos)),
                Some('"') => {
                    self.at += 1;
                    return Ok(Tok::Str(out));
                }
                Some('\\') => {
                    out.push(self.escape(pos)?);
                }
                Some(c) => {
                    out.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn escape(&mut self, pos: Pos) -> Result<char, ParseError> {
        let escaped = self.peek(1).ok_or_else(|| unterminated(pos))?;
        self.at += 2;
        Ok(match escaped {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let hex: String = (0..4).filter_map(|i| self.peek(i)).collect();
                let code = u32::from_str_radix(&hex, 16).map_err(|_| unterminated(pos))?;
                self.at += 4;
                char::from_u32(code).unwrap_or('\u{fffd}')
            }
            _ => return Err(unterminated(pos)),
        })
    }

    fn block_string(&mut self, pos: Pos) -> Result<Tok, ParseError> {
        self.at += 3;
        let mut raw = String::new();
        loop {
            match self.peek(0) {
                None => return Err(unterminated(pos)),
                Some('"') if self.peek(1) == Some('"') && self.peek(2) == Some('"') => {
                    self.at += 3;
                    return Ok(Tok::Str(block_value(&raw)));
                }
                Some('\\')
                    if self.peek(1) == Some('"')
                        && self.peek(2) == Some('"')
                        && self.peek(3) == Some('"') =>
                {
                    raw.push_str("\"\"\"");
                    self.at += 4;
                }
                Some(c) => {
                    raw.push(c);
                    self.at += 1;
                    if c == '\n' {
                        self.newline();
                    }
                }
            }
        }
    }
}

/// The value of a block string: common indentation and blank first/last lines removed.
fn block_value(raw: &str) -> String {
    let lines: Vec<&str> = raw.lines().collect();
    let indent = lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                l.to_string()
            } else {
                l.get(indent..).unwrap_or("").to_string()
            }
        })
        .collect();
    while out.first().is_some_and(|l| l.trim().is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.join("\n")
}

fn punct(c: char) -> &'static str {
    match c {
        '{' => "{",
        '}' => "}",
        '(' => "(",
        ')' => ")",
        '[' => "[",
        ']' => "]",
        ':' => ":",
        '=' => "=",
        '@' => "@",
        '$' => "$",
        '!' => "!",
        '|' => "|",
        _ => "&",
    }
}

fn bad_number(pos: Pos) -> ParseError {
    ParseError::at(
        format!(
            "Parse error on bad number at [{}, {}]",
            pos.line, pos.column
        ),
        pos,
    )
}

fn unterminated(pos: Pos) -> ParseError {
    ParseError::at(
        format!(
            "Parse error on bad Unicode escape sequence or unterminated string at [{}, {}]",
            pos.line, pos.column
        ),
        pos,
    )
}
