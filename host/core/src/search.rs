//! MLflow's search-filter and order-by language, parsed into [`Comparison`]s and [`OrderBy`]s
//! that a store compiles to SQL with bound parameters.
//!
//! A filter is `entity.key op value` clauses joined by `AND`. Each searchable kind of thing
//! (runs, experiments, logged models, registered models, model versions) admits its own
//! entities and attributes, described by a [`Grammar`].
//!
//! The grammar follows MLflow's `SearchUtils` (and its subclasses) in `mlflow/utils/search_utils.py`:
//!
//! * keys: `metric.k` / `metrics.k`, `param(s).k` / `parameter(s).k`, `tag(s).k`,
//!   `attribute(s).k` / `attr.k` / `run.k`, `dataset(s).k`, or a bare attribute name. A key is a
//!   dotted name (`tags.mlflow.user`), or quoted with backticks, double or single quotes
//!   (``tags.`mlflow.runName` ``, `params."my key"`); the entity may be backtick-quoted too.
//!   Entity names are case-sensitive, as in MLflow.
//! * operators: `= != < <= > >= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL` (keywords in any case).
//! * values: numbers for metrics and numeric attributes; single- or double-quoted strings
//!   otherwise (a doubled quote inside stands for the quote itself); a parenthesised list of
//!   quoted strings for `IN` / `NOT IN`.
//!
//! Type rules are checked while parsing, so a store only sees well-typed comparisons. Where
//! MLflow silently accepts garbage (clauses without `AND` between them, a dangling `AND`), this
//! parser rejects it with an `INVALID_PARAMETER_VALUE` error that names the offending token.

use crate::{Error, Result};

/// What a filter key refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
}

impl Entity {
    fn name(self) -> &'static str {
        match self {
            Self::Metric => "metric",
            Self::Param => "parameter",
            Self::Tag => "tag",
            Self::Attribute => "attribute",
            Self::Dataset => "dataset",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
    /// A regular expression (`RLIKE`), which MLflow takes in trace filters only.
    RLike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
            Self::Like => "LIKE",
            Self::ILike => "ILIKE",
            Self::RLike => "RLIKE",
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }
}

const NUMERIC_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge];
const STRING_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike];
const NULL_OPS: &[Op] = &[Op::IsNull, Op::IsNotNull];
const LIST_OPS: &[Op] = &[Op::In, Op::NotIn];
const ID_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::In, Op::NotIn];

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Str(String),
    List(Vec<String>),
    /// The operand of `IS NULL` / `IS NOT NULL`.
    None,
}

/// One `entity.key op value` clause; a filter is their conjunction.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub entity: Entity,
    pub key: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    pub entity: Entity,
    pub key: String,
    pub ascending: bool,
}

/// What one kind of search admits.
pub struct Grammar {
    /// Entities other than attributes that may appear in a filter.
    entities: &'static [Entity],
    /// Entities other than attributes that may order results.
    order_entities: &'static [Entity],
    /// Attribute keys compared as numbers, after aliasing.
    numeric_attributes: &'static [&'static str],
    /// Numeric attributes whose values must be whole numbers.
    integer_attributes: &'static [&'static str],
    /// Attribute keys compared as strings, after aliasing.
    string_attributes: &'static [&'static str],
    /// String attributes holding integer ids (given quoted, as MLflow wants): they take only
    /// `=`, `!=`, `IN` and `NOT IN`, and every value must be an integer.
    id_attributes: &'static [&'static str],
    /// Attribute keys that take `IN` / `NOT IN`.
    list_attributes: &'static [&'static str],
    /// Attribute keys allowed in `order_by`, after aliasing.
    order_attributes: &'static [&'static str],
    /// Alternative spellings of attribute keys and what they mean.
    aliases: &'static [(&'static str, &'static str)],
    /// Whether params and tags accept `IS NULL` / `IS NOT NULL`.
    null_checks: bool,
    /// Whether numeric values may also be given as quoted strings (`version_number = '2'`).
    quoted_numbers: bool,
}

/// Runs (MLflow's `SearchUtils`).
pub const RUNS: Grammar = Grammar {
    entities: &[Entity::Metric, Entity::Param, Entity::Tag, Entity::Dataset],
    order_entities: &[Entity::Metric, Entity::Param, Entity::Tag],
    numeric_attributes: &["start_time", "end_time"],
    integer_attributes: &[],
    string_attributes: &["run_id", "run_name", "status", "user_id", "artifact_uri"],
    id_attributes: &[],
    list_attributes: &["run_id"],
    order_attributes: &[
        "run_id",
        "run_name",
        "status",
        "user_id",
        "artifact_uri",
        "start_time",
        "end_time",
    ],
    aliases: &[
        ("created", "start_time"),
        ("Created", "start_time"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
        ("run_uuid", "run_id"),
    ],
    null_checks: true,
    quoted_numbers: false,
};

/// Experiments (MLflow's `SearchExperimentsUtils`).
pub const EXPERIMENTS: Grammar = Grammar {
    entities: &[Entity::Tag],
    order_entities: &[],
    numeric_attributes: &["creation_time", "last_update_time"],
    integer_attributes: &["creation_time", "last_update_time"],
    string_attributes: &["name", "experiment_id"],
    id_attributes: &["experiment_id"],
    list_attributes: &["experiment_id"],
    order_attributes: &["name", "experiment_id", "creation_time", "last_update_time"],
    aliases: &[],
    null_checks: true,
    quoted_numbers: false,
};

/// Logged models (MLflow's `SearchLoggedModelsUtils`).
pub const LOGGED_MODELS: Grammar = Grammar {
    entities: &[Entity::Metric, Entity::Param, Entity::Tag],
    order_entities: &[Entity::Metric, Entity::Param, Entity::Tag],
    numeric_attributes: &["creation_timestamp", "last_updated_timestamp"],
    integer_attributes: &[],
    string_attributes: &["model_id", "name", "status", "model_type", "source_run_id"],
    id_attributes: &[],
    list_attributes: &["model_id", "name", "status", "model_type", "source_run_id"],
    order_attributes: &[
        "model_id",
        "name",
        "status",
        "model_type",
        "source_run_id",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    aliases: &[
        ("creation_time", "creation_timestamp"),
        ("last_updated_time", "last_updated_timestamp"),
    ],
    null_checks: false,
    quoted_numbers: false,
};

/// Registered models (MLflow's `SearchModelUtils`): `name` and tags; ordered by name or time.
pub const REGISTERED_MODELS: Grammar = Grammar {
    entities: &[Entity::Tag],
    order_entities: &[],
    numeric_attributes: &[],
    integer_attributes: &[],
    string_attributes: &["name"],
    id_attributes: &[],
    list_attributes: &["name"],
    order_attributes: &["name", "creation_timestamp", "last_updated_timestamp"],
    aliases: &[("timestamp", "last_updated_timestamp")],
    null_checks: false,
    quoted_numbers: true,
};

/// Model versions (MLflow's `SearchModelVersionUtils`): name, run id, source and version number,
/// and tags.
pub const MODEL_VERSIONS: Grammar = Grammar {
    entities: &[Entity::Tag],
    order_entities: &[],
    numeric_attributes: &["version_number"],
    integer_attributes: &[],
    string_attributes: &["name", "run_id", "source_path"],
    id_attributes: &[],
    list_attributes: &["name", "run_id"],
    order_attributes: &[
        "name",
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    aliases: &[("timestamp", "last_updated_timestamp")],
    null_checks: false,
    quoted_numbers: true,
};

/// GenAI evaluation datasets (MLflow's `SearchEvaluationDatasetsUtils`): name, times, authors
/// and tags; ordered by name or time.
pub const EVALUATION_DATASETS: Grammar = Grammar {
    entities: &[Entity::Tag],
    order_entities: &[],
    numeric_attributes: &["created_time", "last_update_time"],
    integer_attributes: &["created_time", "last_update_time"],
    string_attributes: &["name", "created_by", "last_updated_by"],
    id_attributes: &[],
    list_attributes: &["name"],
    order_attributes: &["name", "created_time", "last_update_time"],
    aliases: &[],
    null_checks: false,
    quoted_numbers: false,
};

pub fn parse_evaluation_dataset_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &EVALUATION_DATASETS)
}

pub fn parse_evaluation_dataset_order_by(clause: &str) -> Result<OrderBy> {
    attribute_order(parse_order_by(clause, &EVALUATION_DATASETS)?, clause)
}

/// Parses a `search_runs` filter; an empty filter is no condition.
pub fn parse_run_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &RUNS)
}

/// Parses one `search_runs` `order_by` item, e.g. `metrics.acc DESC` or `start_time`.
pub fn parse_run_order_by(clause: &str) -> Result<OrderBy> {
    parse_order_by(clause, &RUNS)
}

/// Parses a `search_experiments` filter; an empty filter is no condition.
pub fn parse_experiment_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &EXPERIMENTS)
}

/// Parses one `search_experiments` `order_by` item (attributes only).
pub fn parse_experiment_order_by(clause: &str) -> Result<OrderBy> {
    parse_order_by(clause, &EXPERIMENTS)
}

/// Parses a `search_logged_models` filter; an empty filter is no condition.
pub fn parse_logged_model_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &LOGGED_MODELS)
}

pub fn parse_registered_model_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &REGISTERED_MODELS)
}

pub fn parse_registered_model_order_by(clause: &str) -> Result<OrderBy> {
    attribute_order(parse_order_by(clause, &REGISTERED_MODELS)?, clause)
}

pub fn parse_model_version_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &MODEL_VERSIONS)
}

pub fn parse_model_version_order_by(clause: &str) -> Result<OrderBy> {
    attribute_order(parse_order_by(clause, &MODEL_VERSIONS)?, clause)
}

/// The registry orders by attributes only.
fn attribute_order(order: OrderBy, clause: &str) -> Result<OrderBy> {
    if order.entity != Entity::Attribute {
        return Err(Error::invalid(format!(
            "Invalid order_by clause '{clause}': only attributes can order registry results"
        )));
    }
    Ok(order)
}

// ---------------------------------------------------------------------------------------------
// Tokens

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare run of identifier characters: a key segment or a keyword.
    Word(String),
    /// Text in `'…'`, `"…"` or `` `…` ``, with the quote character.
    Quoted(char, String),
    /// A number and its source text.
    Number(f64, String),
    /// The `.` between the segments of an identifier.
    Dot,
    Op(Op),
    LParen,
    RParen,
    Comma,
}

impl Token {
    /// The token as it could have been written, for error messages.
    fn text(&self) -> String {
        match self {
            Self::Word(w) => w.clone(),
            Self::Quoted(q, s) => {
                let doubled = format!("{q}{q}");
                format!("{q}{}{q}", s.replace(*q, &doubled))
            }
            Self::Number(_, text) => text.clone(),
            Self::Dot => ".".into(),
            Self::Op(op) => op.as_str().into(),
            Self::LParen => "(".into(),
            Self::RParen => ")".into(),
            Self::Comma => ",".into(),
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Self::Word(w) if w.eq_ignore_ascii_case(keyword))
    }
}

/// `'tok'`, or `the end` when there is no token.
fn describe(token: Option<&Token>) -> String {
    token.map_or_else(|| "the end".into(), |t| format!("'{}'", t.text()))
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '/')
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        // Right after an identifier segment (no space between), a `.` joins the next segment.
        let joins = i > 0
            && !chars[i - 1].is_whitespace()
            && matches!(tokens.last(), Some(Token::Word(_) | Token::Quoted(..)));
        let after_dot = matches!(tokens.last(), Some(Token::Dot));
        match c {
            c if c.is_whitespace() => i += 1,
            '(' | ')' | ',' => {
                tokens.push(match c {
                    '(' => Token::LParen,
                    ')' => Token::RParen,
                    _ => Token::Comma,
                });
                i += 1;
            }
            '=' if next == Some('=') => {
                return Err(Error::invalid(format!(
                    "Invalid comparator '==' at position {i} in '{input}'; use '='"
                )));
            }
            '=' => {
                tokens.push(Token::Op(Op::Eq));
                i += 1;
            }
            '!' if next == Some('=') => {
                tokens.push(Token::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let op = match (c, next == Some('=')) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('>', true) => Op::Ge,
                    _ => Op::Gt,
                };
                tokens.push(Token::Op(op));
                i += if next == Some('=') { 2 } else { 1 };
            }
            '\'' | '"' | '`' => {
                let (text, end) = quoted(&chars, i, input)?;
                tokens.push(Token::Quoted(c, text));
                i = end;
            }
            '.' if joins => {
                tokens.push(Token::Dot);
                i += 1;
            }
            // A key segment after a dot may start with a digit: `metrics.1st`.
            c if after_dot && word_char(c) => {
                let start = i;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit()
                || (matches!(c, '-' | '+' | '.')
                    && next.is_some_and(|n| n.is_ascii_digit() || (n == '.' && c != '.'))) =>
            {
                let (token, end) = number(&chars, i)?;
                tokens.push(token);
                i = end;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && word_char(chars[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid clause(s) in filter string: unexpected character '{other}' at \
                     position {i} in '{input}'"
                )));
            }
        }
    }
    Ok(tokens)
}

/// Reads the quoted text starting at `chars[start]` (the quote); a doubled quote inside stands
/// for the quote itself. Returns the text and the index after the closing quote.
fn quoted(chars: &[char], start: usize, input: &str) -> Result<(String, usize)> {
    let quote = chars[start];
    let mut text = String::new();
    let mut j = start + 1;
    loop {
        match chars.get(j) {
            None => {
                return Err(Error::invalid(format!(
                    "Invalid clause(s) in filter string: unterminated quote {quote} starting at \
                     position {start} in '{input}'"
                )));
            }
            Some(&q) if q == quote && chars.get(j + 1) == Some(&quote) => {
                text.push(quote);
                j += 2;
            }
            Some(&q) if q == quote => return Ok((text, j + 1)),
            Some(&other) => {
                text.push(other);
                j += 1;
            }
        }
    }
}

/// Reads `[-+]digits[.digits][e[-+]digits]` (or `.digits…`) starting at `chars[start]`. A
/// number running into letters or another dot (`1abc`, `1.2.3`) is an error.
fn number(chars: &[char], start: usize) -> Result<(Token, usize)> {
    let digits = |mut j: usize| {
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut i = start;
    if matches!(chars[i], '-' | '+') {
        i += 1;
    }
    i = digits(i);
    if chars.get(i) == Some(&'.') {
        i = digits(i + 1);
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('-' | '+')) {
            j += 1;
        }
        if chars.get(j).is_some_and(char::is_ascii_digit) {
            i = digits(j);
        }
    }
    let mut end = i;
    while end < chars.len() && (word_char(chars[end]) || chars[end] == '.') {
        end += 1;
    }
    let text: String = chars[start..end].iter().collect();
    match text.parse::<f64>() {
        Ok(n) if end == i && n.is_finite() => Ok((Token::Number(n, text), end)),
        _ => Err(Error::invalid(format!(
            "Invalid clause(s) in filter string: '{text}' is not a valid number"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Parser

fn entity_of(prefix: &str) -> Option<Entity> {
    Some(match prefix {
        "metric" | "metrics" => Entity::Metric,
        "param" | "params" | "parameter" | "parameters" => Entity::Param,
        "tag" | "tags" => Entity::Tag,
        "attribute" | "attributes" | "attr" | "run" => Entity::Attribute,
        "dataset" | "datasets" => Entity::Dataset,
        _ => return None,
    })
}

fn unknown_entity(prefix: &str) -> Error {
    Error::invalid(format!(
        "Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', \
         'attribute', 'dataset']"
    ))
}

fn op_list(ops: &[Op]) -> String {
    let names: Vec<String> = ops.iter().map(|op| format!("'{}'", op.as_str())).collect();
    format!("[{}]", names.join(", "))
}

fn key_list(keys: &[&str]) -> String {
    let names: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    format!("[{}]", names.join(", "))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    grammar: &'a Grammar,
    input: &'a str,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, grammar: &'a Grammar) -> Result<Self> {
        Ok(Self {
            tokens: tokenize(input)?,
            pos: 0,
            grammar,
            input,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn error(&self, what: impl std::fmt::Display) -> Error {
        Error::invalid(format!(
            "Invalid clause(s) in filter string: {what} in '{}'",
            self.input
        ))
    }

    /// `entity.key`, `entity.dotted.key`, `entity."quoted key"`, `` `entity`.key ``,
    /// `` `entity.key` ``, or a bare (possibly quoted) attribute name.
    fn identifier(&mut self) -> Result<(Entity, String)> {
        // Each segment and whether it was quoted.
        let mut segments: Vec<(String, bool)> = Vec::new();
        match self.next() {
            Some(Token::Word(w))
                if ["AND", "OR", "NOT"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k))
                    && self.peek() != Some(&Token::Dot) =>
            {
                return Err(self.error(format!("expected an identifier, found '{w}'")));
            }
            Some(Token::Word(w)) => segments.push((w, false)),
            Some(Token::Quoted(_, s)) => segments.push((s, true)),
            other => {
                return Err(self.error(format!(
                    "expected an identifier, found {}",
                    describe(other.as_ref())
                )));
            }
        }
        while self.peek() == Some(&Token::Dot) {
            self.pos += 1;
            match self.next() {
                Some(Token::Word(w)) => segments.push((w, false)),
                Some(Token::Quoted(_, s)) => segments.push((s, true)),
                other => {
                    return Err(self.error(format!(
                        "expected a key after '{}.', found {}",
                        segments[0].0,
                        describe(other.as_ref())
                    )));
                }
            }
        }
        let (first, first_quoted) = segments.remove(0);
        let (entity, key) = if segments.is_empty() {
            // A quoted `entity.key` in one piece, or a bare attribute name.
            match first.split_once('.') {
                Some((prefix, key)) if first_quoted && entity_of(prefix).is_some() => (
                    entity_of(prefix).unwrap_or(Entity::Attribute),
                    key.to_string(),
                ),
                _ => (Entity::Attribute, first),
            }
        } else {
            let entity = entity_of(&first).ok_or_else(|| unknown_entity(&first))?;
            if segments.len() > 1 && segments.iter().any(|(_, quoted)| *quoted) {
                let written: Vec<String> = segments.iter().map(|(s, _)| s.clone()).collect();
                return Err(self.error(format!(
                    "the key '{}' mixes quoted and dotted parts; quote the whole key",
                    written.join(".")
                )));
            }
            let key: Vec<String> = segments.into_iter().map(|(s, _)| s).collect();
            (entity, key.join("."))
        };
        if key.is_empty() {
            return Err(self.error(format!("empty {} key", entity.name())));
        }
        Ok((entity, key))
    }

    /// The canonical name of an attribute key, or an error naming the valid ones.
    fn attribute(&self, key: &str, order: bool) -> Result<String> {
        let g = self.grammar;
        let canonical = g
            .aliases
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(key, |(_, canonical)| canonical);
        let valid: Vec<&str> = if order {
            g.order_attributes.to_vec()
        } else {
            g.string_attributes
                .iter()
                .chain(g.numeric_attributes)
                .copied()
                .collect()
        };
        if !valid.contains(&canonical) {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{key}' specified. Valid keys are '{}'",
                key_list(&valid)
            )));
        }
        Ok(canonical.to_string())
    }

    fn operator(&mut self) -> Result<Op> {
        let token = self.next();
        let op = match &token {
            Some(Token::Op(op)) => *op,
            Some(t) if t.is_keyword("LIKE") => Op::Like,
            Some(t) if t.is_keyword("ILIKE") => Op::ILike,
            Some(t) if t.is_keyword("IN") => Op::In,
            Some(t) if t.is_keyword("NOT") => {
                if self.peek().is_some_and(|t| t.is_keyword("IN")) {
                    self.pos += 1;
                    Op::NotIn
                } else {
                    return Err(self.error(format!(
                        "expected IN after NOT, found {}",
                        describe(self.peek())
                    )));
                }
            }
            Some(t) if t.is_keyword("IS") => {
                let not = self.peek().is_some_and(|t| t.is_keyword("NOT"));
                if not {
                    self.pos += 1;
                }
                if self.peek().is_some_and(|t| t.is_keyword("NULL")) {
                    self.pos += 1;
                    if not { Op::IsNotNull } else { Op::IsNull }
                } else {
                    return Err(self.error(format!(
                        "expected NULL after IS{}, found {}",
                        if not { " NOT" } else { "" },
                        describe(self.peek())
                    )));
                }
            }
            other => {
                return Err(self.error(format!(
                    "expected a comparison operator, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        Ok(op)
    }

    /// `( 'a', "b", … )`; a trailing comma is allowed, as Python's literal syntax does.
    fn list(&mut self, entity: Entity, key: &str) -> Result<Vec<String>> {
        match self.next() {
            Some(Token::LParen) => {}
            other => {
                return Err(Error::invalid(format!(
                    "Expected a parenthesised list of quoted strings for {} '{key}'. Got value {}",
                    entity.name(),
                    describe(other.as_ref())
                )));
            }
        }
        let mut items = Vec::new();
        loop {
            match self.next() {
                Some(Token::Quoted('\'' | '"', s)) => items.push(s),
                Some(Token::RParen) if !items.is_empty() => break,
                Some(Token::RParen) => {
                    return Err(Error::invalid(
                        "While parsing a list in the query, expected a non-empty list of string \
                         values, but got empty list",
                    ));
                }
                other => {
                    return Err(self.error(format!(
                        "expected a quoted string in the list, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::RParen) => break,
                other => {
                    return Err(self.error(format!(
                        "expected ',' or ')' in the list, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
        Ok(items)
    }

    /// The comparators `entity.key` admits.
    fn allowed_ops(&self, entity: Entity, key: &str) -> Vec<Op> {
        let g = self.grammar;
        let mut ops: Vec<Op> = match entity {
            Entity::Metric => NUMERIC_OPS.to_vec(),
            Entity::Param | Entity::Tag => STRING_OPS.to_vec(),
            Entity::Dataset => [STRING_OPS, LIST_OPS].concat(),
            Entity::Attribute if g.numeric_attributes.contains(&key) => NUMERIC_OPS.to_vec(),
            Entity::Attribute if g.id_attributes.contains(&key) => ID_OPS.to_vec(),
            Entity::Attribute => STRING_OPS.to_vec(),
        };
        if matches!(entity, Entity::Param | Entity::Tag) && g.null_checks {
            ops.extend_from_slice(NULL_OPS);
        }
        if entity == Entity::Attribute
            && g.list_attributes.contains(&key)
            && !g.id_attributes.contains(&key)
        {
            ops.extend_from_slice(LIST_OPS);
        }
        ops
    }

    fn clause(&mut self) -> Result<Comparison> {
        let g = self.grammar;
        let (entity, key) = self.identifier()?;
        if entity != Entity::Attribute && !g.entities.contains(&entity) {
            let mut valid = vec!["attribute"];
            valid.extend(g.entities.iter().map(|e| e.name()));
            return Err(Error::invalid(format!(
                "Invalid entity type '{}' for this search. Valid entity types are {}",
                entity.name(),
                key_list(&valid)
            )));
        }
        let key = match entity {
            Entity::Attribute => self.attribute(&key, false)?,
            Entity::Dataset if !matches!(key.as_str(), "name" | "digest" | "context") => {
                return Err(Error::invalid(format!(
                    "Invalid dataset key '{key}' specified. Valid keys are \
                     '['name', 'digest', 'context']'"
                )));
            }
            _ => key,
        };
        let op = self.operator()?;
        let allowed = self.allowed_ops(entity, &key);
        if !allowed.contains(&op) {
            let mut message = format!(
                "Invalid comparator '{}' for {} '{key}', not one of '{}'",
                op.as_str(),
                entity.name(),
                op_list(&allowed)
            );
            if entity == Entity::Attribute && matches!(op, Op::In | Op::NotIn) {
                let lists: Vec<&str> = g.list_attributes.to_vec();
                message.push_str(&format!(
                    ". Only {} attributes support comparison with a list of quoted string values.",
                    key_list(&lists)
                ));
            } else if matches!(op, Op::IsNull | Op::IsNotNull) && g.null_checks {
                message.push_str(if g.entities.contains(&Entity::Param) {
                    ". IS NULL / IS NOT NULL is only supported for tags and params"
                } else {
                    ". IS NULL / IS NOT NULL is only supported for tags"
                });
            }
            return Err(Error::invalid(message));
        }
        let numeric = entity == Entity::Metric
            || (entity == Entity::Attribute && g.numeric_attributes.contains(&key.as_str()));
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => Value::List(self.list(entity, &key)?),
            _ if numeric => Value::Number(self.number_value(entity, &key)?),
            _ => Value::Str(self.string_value(entity, &key)?),
        };
        if entity == Entity::Attribute && g.id_attributes.contains(&key.as_str()) {
            let ids = match &value {
                Value::Str(s) => std::slice::from_ref(s),
                Value::List(items) => items.as_slice(),
                _ => &[],
            };
            for id in ids {
                if id.trim().parse::<i64>().is_err() {
                    return Err(Error::invalid(format!(
                        "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
                    )));
                }
            }
        }
        Ok(Comparison {
            entity,
            key,
            op,
            value,
        })
    }

    fn number_value(&mut self, entity: Entity, key: &str) -> Result<f64> {
        let g = self.grammar;
        let token = self.next();
        let n = match &token {
            Some(Token::Number(n, _)) => *n,
            Some(Token::Quoted('\'' | '"', s)) if g.quoted_numbers => s
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "Expected numeric value type for {} '{key}'. Found '{s}'",
                        entity.name()
                    ))
                })?,
            None => return Err(self.error("missing value at the end")),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "Expected numeric value type for {} '{key}'. Found {}",
                    entity.name(),
                    other.text()
                )));
            }
        };
        if g.integer_attributes.contains(&key) && n.fract() != 0.0 {
            return Err(Error::invalid(format!(
                "Invalid value for numeric attribute '{key}': '{}'",
                token.as_ref().map(Token::text).unwrap_or_default()
            )));
        }
        Ok(n)
    }

    fn string_value(&mut self, entity: Entity, key: &str) -> Result<String> {
        match self.next() {
            Some(Token::Quoted('\'' | '"', s)) => Ok(s),
            None => Err(self.error("missing value at the end")),
            Some(other) => Err(Error::invalid(format!(
                "Expected a quoted string value for {} '{key}' (e.g. 'my-value'). Got value {}",
                entity.name(),
                other.text()
            ))),
        }
    }
}

/// The most clauses one filter may have. Each becomes a condition of the store's SQL, and
/// SQLite refuses expressions nested past 1,000 levels (about 990 AND-ed clauses), so longer
/// filters are refused here, with a clear error, before any SQL is built.
pub const MAX_FILTER_CLAUSES: usize = 200;
/// The most values the `IN` lists of one filter may hold together: each is a bound parameter.
pub const MAX_FILTER_LIST_VALUES: usize = 10_000;

/// Parses a filter with `grammar`; an empty filter is no condition.
pub fn parse_filter(filter: &str, grammar: &Grammar) -> Result<Vec<Comparison>> {
    let mut parser = Parser::new(filter, grammar)?;
    let mut clauses = Vec::new();
    if parser.tokens.is_empty() {
        return Ok(clauses);
    }
    let mut list_values = 0;
    loop {
        if clauses.len() == MAX_FILTER_CLAUSES {
            return Err(Error::invalid(format!(
                "the filter has more than {MAX_FILTER_CLAUSES} clauses, the most a search takes"
            )));
        }
        let clause = parser.clause()?;
        if let Value::List(values) = &clause.value {
            list_values += values.len();
            if list_values > MAX_FILTER_LIST_VALUES {
                return Err(Error::invalid(format!(
                    "the filter's IN lists hold more than {MAX_FILTER_LIST_VALUES} values, the \
                     most a search takes"
                )));
            }
        }
        clauses.push(clause);
        match parser.next() {
            None => return Ok(clauses),
            Some(t) if t.is_keyword("AND") => {}
            Some(t) if t.is_keyword("OR") => {
                return Err(parser.error("'OR' is not supported, only AND-ed clauses are"));
            }
            Some(other) => {
                return Err(parser.error(format!(
                    "expected AND or the end after a clause, found '{}'",
                    other.text()
                )));
            }
        }
        if parser.peek().is_none() {
            return Err(parser.error("a clause must follow 'AND'"));
        }
    }
}

/// Parses one `order_by` item: an identifier, then optionally `ASC` or `DESC` (any case).
/// A key without an entity is an attribute.
pub fn parse_order_by(clause: &str, grammar: &Grammar) -> Result<OrderBy> {
    let unparsable =
        |why: String| Error::invalid(format!("Invalid order_by clause '{clause}'. {why}"));
    let mut parser = Parser::new(clause, grammar).map_err(|e| {
        let detail = e
            .message
            .trim_start_matches("Invalid clause(s) in filter string: ");
        unparsable(format!("Could not be parsed: {detail}"))
    })?;
    if parser.tokens.is_empty() {
        return Err(unparsable("Could not be parsed: it is empty".into()));
    }
    let (entity, key) = parser.identifier().map_err(|e| {
        if e.message.starts_with("Invalid clause(s)") {
            unparsable("Could not be parsed".into())
        } else {
            e
        }
    })?;
    let key = match entity {
        Entity::Attribute => parser.attribute(&key, true)?,
        e if grammar.order_entities.contains(&e) => key,
        e => {
            return Err(unparsable(format!(
                "Invalid order_by entity: {}s cannot order these results",
                e.name()
            )));
        }
    };
    let ascending = match parser.next() {
        None => true,
        Some(t) if t.is_keyword("ASC") => true,
        Some(t) if t.is_keyword("DESC") => false,
        Some(other) => {
            return Err(Error::invalid(format!(
                "Invalid ordering key in order_by clause '{clause}': expected ASC or DESC, \
                 found '{}'",
                other.text()
            )));
        }
    };
    if let Some(extra) = parser.next() {
        return Err(unparsable(format!(
            "Could not be parsed: unexpected '{}' at the end",
            extra.text()
        )));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn filters_past_the_clause_and_list_limits_are_refused_before_sql() {
        let clauses = |n: usize| vec!["metrics.a > 1"; n].join(" AND ");
        assert_eq!(
            parse_run_filter(&clauses(MAX_FILTER_CLAUSES))
                .unwrap()
                .len(),
            MAX_FILTER_CLAUSES
        );
        for n in [MAX_FILTER_CLAUSES + 1, 1000] {
            let e = parse_run_filter(&clauses(n)).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::InvalidParameterValue);
            assert!(e.message.contains("more than 200 clauses"), "{}", e.message);
        }
        let list = |n: usize| {
            let values: Vec<String> = (0..n).map(|i| format!("'{i}'")).collect();
            format!("attributes.run_id IN ({})", values.join(", "))
        };
        assert!(parse_run_filter(&list(MAX_FILTER_LIST_VALUES)).is_ok());
        let e = parse_run_filter(&list(MAX_FILTER_LIST_VALUES + 1)).unwrap_err();
        assert!(e.message.contains("IN lists"), "{}", e.message);
    }

    fn one(filter: &str) -> Comparison {
        let mut clauses = parse_run_filter(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        assert_eq!(clauses.len(), 1, "{filter}");
        clauses.remove(0)
    }

    fn cmp(entity: Entity, key: &str, op: Op, value: Value) -> Comparison {
        Comparison {
            entity,
            key: key.into(),
            op,
            value,
        }
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| s.to_string()).collect())
    }

    /// The error message, after checking the code is INVALID_PARAMETER_VALUE.
    fn err(filter: &str) -> String {
        let e = parse_run_filter(filter).expect_err(filter);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{filter}");
        e.message
    }

    fn err_has(filter: &str, needles: &[&str]) {
        let message = err(filter);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{filter:?}: {message:?} lacks {needle:?}"
            );
        }
    }

    fn exp_err(filter: &str) -> String {
        let e = parse_experiment_filter(filter).expect_err(filter);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{filter}");
        e.message
    }

    fn order(clause: &str) -> (Entity, String, bool) {
        let o = parse_run_order_by(clause).unwrap_or_else(|e| panic!("{clause}: {e}"));
        (o.entity, o.key, o.ascending)
    }

    fn order_err(clause: &str) -> String {
        let e = parse_run_order_by(clause).expect_err(clause);
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{clause}");
        e.message
    }

    #[test]
    fn empty_filter_is_no_condition() {
        assert!(parse_run_filter("").unwrap().is_empty());
        assert!(parse_run_filter("   \t\n ").unwrap().is_empty());
        assert!(parse_experiment_filter("").unwrap().is_empty());
        assert!(parse_experiment_filter("  ").unwrap().is_empty());
    }

    #[test]
    fn metric_aliases() {
        for prefix in ["metric", "metrics"] {
            assert_eq!(
                one(&format!("{prefix}.acc > 0.5")),
                cmp(Entity::Metric, "acc", Op::Gt, Value::Number(0.5))
            );
        }
    }

    #[test]
    fn param_aliases() {
        for prefix in ["param", "params", "parameter", "parameters"] {
            assert_eq!(
                one(&format!("{prefix}.lr = '0.1'")),
                cmp(Entity::Param, "lr", Op::Eq, s("0.1"))
            );
        }
    }

    #[test]
    fn tag_aliases() {
        for prefix in ["tag", "tags"] {
            assert_eq!(
                one(&format!("{prefix}.team = 'a'")),
                cmp(Entity::Tag, "team", Op::Eq, s("a"))
            );
        }
    }

    #[test]
    fn attribute_aliases() {
        for prefix in ["attribute", "attributes", "attr", "run"] {
            assert_eq!(
                one(&format!("{prefix}.status = 'FINISHED'")),
                cmp(Entity::Attribute, "status", Op::Eq, s("FINISHED"))
            );
        }
        // Without an entity a key is an attribute.
        assert_eq!(
            one("status != 'FAILED'"),
            cmp(Entity::Attribute, "status", Op::Ne, s("FAILED"))
        );
    }

    #[test]
    fn dataset_aliases_and_keys() {
        for prefix in ["dataset", "datasets"] {
            for key in ["name", "digest", "context"] {
                assert_eq!(
                    one(&format!("{prefix}.{key} = 'v'")),
                    cmp(Entity::Dataset, key, Op::Eq, s("v"))
                );
            }
        }
        assert_eq!(
            one("datasets.context IN ('train', 'eval')"),
            cmp(Entity::Dataset, "context", Op::In, list(&["train", "eval"]))
        );
        assert_eq!(one("dataset.digest NOT IN ('x')").op, Op::NotIn);
        assert_eq!(one("dataset.name LIKE 'tr%'").op, Op::Like);
        assert_eq!(one("dataset.name ILIKE 'TR%'").op, Op::ILike);
        err_has("datasets.size = 'x'", &["Invalid dataset key 'size'"]);
        err_has(
            "datasets.name > 'a'",
            &["Invalid comparator '>'", "dataset 'name'"],
        );
    }

    #[test]
    fn entity_names_are_case_sensitive_as_in_mlflow() {
        err_has("Metrics.a > 1", &["Invalid entity type 'Metrics'"]);
        err_has("TAGS.a = 'x'", &["Invalid entity type 'TAGS'"]);
    }

    #[test]
    fn run_attribute_keys_and_aliases() {
        for key in ["run_id", "run_name", "status", "user_id", "artifact_uri"] {
            assert_eq!(
                one(&format!("attributes.{key} = 'v'")),
                cmp(Entity::Attribute, key, Op::Eq, s("v"))
            );
        }
        for key in ["start_time", "end_time"] {
            assert_eq!(
                one(&format!("attributes.{key} >= 10")),
                cmp(Entity::Attribute, key, Op::Ge, Value::Number(10.0))
            );
        }
        assert_eq!(one("attributes.created > 5").key, "start_time");
        assert_eq!(one("Created < 5").key, "start_time");
        assert_eq!(one("start_time > 5.5").value, Value::Number(5.5));
        for alias in ["run name", "Run name", "Run Name"] {
            assert_eq!(one(&format!("attributes.`{alias}` = 'x'")).key, "run_name");
        }
        assert_eq!(one("`run name` LIKE 'x%'").key, "run_name");
    }

    #[test]
    fn unknown_run_attributes_are_named() {
        for key in ["lifecycle_stage", "experiment_id", "nope", "name"] {
            err_has(
                &format!("attributes.{key} = 'x'"),
                &["Invalid attribute key", &format!("'{key}'"), "'run_id'"],
            );
        }
    }

    #[test]
    fn every_metric_operator() {
        for (text, op) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
        ] {
            assert_eq!(
                one(&format!("metrics.acc {text} 0.5")),
                cmp(Entity::Metric, "acc", op, Value::Number(0.5))
            );
            // No space needed around a symbol.
            assert_eq!(one(&format!("metrics.acc{text}2")).op, op);
        }
    }

    #[test]
    fn string_operators_and_keyword_case() {
        for (text, op) in [
            ("LIKE", Op::Like),
            ("like", Op::Like),
            ("Like", Op::Like),
            ("ILIKE", Op::ILike),
            ("ilike", Op::ILike),
            ("=", Op::Eq),
            ("!=", Op::Ne),
        ] {
            assert_eq!(one(&format!("params.p {text} 'a%'")).op, op);
            assert_eq!(one(&format!("tags.t {text} 'a%'")).op, op);
            assert_eq!(one(&format!("run_name {text} 'a%'")).op, op);
        }
    }

    #[test]
    fn null_checks_on_params_and_tags() {
        assert_eq!(
            one("tags.t IS NULL"),
            cmp(Entity::Tag, "t", Op::IsNull, Value::None)
        );
        assert_eq!(
            one("params.p is not null"),
            cmp(Entity::Param, "p", Op::IsNotNull, Value::None)
        );
        err_has(
            "metrics.m IS NULL",
            &["Invalid comparator 'IS NULL'", "metric 'm'"],
        );
        err_has("status IS NOT NULL", &["Invalid comparator 'IS NOT NULL'"]);
        err_has("tags.t IS 'x'", &["expected NULL after IS", "''x''"]);
    }

    #[test]
    fn in_lists() {
        assert_eq!(
            one("attributes.run_id IN ('a', 'b')"),
            cmp(Entity::Attribute, "run_id", Op::In, list(&["a", "b"]))
        );
        assert_eq!(
            one("run_id not in (\"a\")"),
            cmp(Entity::Attribute, "run_id", Op::NotIn, list(&["a"]))
        );
        assert_eq!(one("run_id NOT  IN ('a','b',)").value, list(&["a", "b"]));
        assert_eq!(one("run_id IN ('it''s')").value, list(&["it's"]));
        assert_eq!(one("run_uuid IN ('a')").key, "run_id");
    }

    #[test]
    fn malformed_in_lists() {
        err_has("run_id IN ()", &["non-empty list"]);
        err_has("run_id IN 'a'", &["parenthesised list", "'a'"]);
        err_has("run_id IN ('a' 'b')", &["expected ',' or ')'", "''b''"]);
        err_has("run_id IN ('a', 1)", &["expected a quoted string", "'1'"]);
        err_has("run_id IN ('a'", &["expected ',' or ')'", "the end"]);
        err_has("run_id IN (`a`)", &["expected a quoted string", "'`a`'"]);
        err_has("run_id NOT LIKE 'a'", &["expected IN after NOT", "'LIKE'"]);
    }

    #[test]
    fn in_is_only_for_list_attributes() {
        err_has(
            "status IN ('a')",
            &[
                "Invalid comparator 'IN'",
                "Only ['run_id'] attributes support",
            ],
        );
        err_has(
            "params.p IN ('a')",
            &["Invalid comparator 'IN'", "parameter 'p'"],
        );
        err_has(
            "tags.t NOT IN ('a')",
            &["Invalid comparator 'NOT IN'", "tag 't'"],
        );
        err_has(
            "metrics.m IN (1)",
            &["Invalid comparator 'IN'", "metric 'm'"],
        );
        err_has(
            "run_id = ('a', 'b')",
            &["Expected a quoted string value", "("],
        );
    }

    #[test]
    fn comparator_type_rules() {
        for op in ["LIKE", "ILIKE"] {
            err_has(
                &format!("metrics.m {op} 1"),
                &[&format!("Invalid comparator '{op}'")],
            );
            err_has(
                &format!("start_time {op} 1"),
                &[&format!("Invalid comparator '{op}'")],
            );
        }
        for op in ["<", "<=", ">", ">="] {
            err_has(
                &format!("params.p {op} 'x'"),
                &[&format!("Invalid comparator '{op}'")],
            );
            err_has(
                &format!("tags.t {op} 'x'"),
                &[&format!("Invalid comparator '{op}'")],
            );
            err_has(
                &format!("status {op} 'x'"),
                &[&format!("Invalid comparator '{op}'")],
            );
        }
    }

    #[test]
    fn value_type_rules() {
        err_has(
            "metrics.m = 'abc'",
            &["Expected numeric value type", "metric 'm'", "'abc'"],
        );
        err_has("metrics.m = '1'", &["Expected numeric value type"]);
        err_has("metrics.m > inf", &["Expected numeric value type", "inf"]);
        err_has(
            "end_time = 'x'",
            &["Expected numeric value type", "attribute 'end_time'"],
        );
        err_has(
            "params.p = 5",
            &["Expected a quoted string value", "parameter 'p'", "5"],
        );
        err_has("tags.t = x", &["Expected a quoted string value", "x"]);
        err_has("tags.t = `x`", &["Expected a quoted string value", "`x`"]);
        err_has("status = 1", &["Expected a quoted string value"]);
    }

    #[test]
    fn numbers() {
        for (text, n) in [
            ("1", 1.0),
            ("-1", -1.0),
            ("+2", 2.0),
            ("0.25", 0.25),
            (".5", 0.5),
            ("-.5", -0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1.5E-3", 0.0015),
            ("-2e+2", -200.0),
        ] {
            assert_eq!(
                one(&format!("metrics.m > {text}")).value,
                Value::Number(n),
                "{text}"
            );
        }
        err_has("metrics.m > 1.0.0", &["'1.0.0' is not a valid number"]);
        err_has("metrics.m > 1abc", &["'1abc' is not a valid number"]);
        err_has("metrics.m > 1e", &["'1e' is not a valid number"]);
        err_has("metrics.m > 0x10", &["'0x10' is not a valid number"]);
    }

    #[test]
    fn quoting_styles_for_keys() {
        assert_eq!(one("params.\"my key\" = 'v'").key, "my key");
        assert_eq!(one("params.`my key` = 'v'").key, "my key");
        assert_eq!(one("params.'my key' = 'v'").key, "my key");
        assert_eq!(one("`params.my key` = 'v'").key, "my key");
        assert_eq!(one("`params`.`my key` = 'v'").key, "my key");
        assert_eq!(one("`tags`.team = 'v'").entity, Entity::Tag);
        assert_eq!(one("tags.`mlflow.runName` = 'r'").key, "mlflow.runName");
        assert_eq!(one("tags.mlflow.user = 'me'").key, "mlflow.user");
        assert_eq!(one("metrics.a.b.c > 0").key, "a.b.c");
        assert_eq!(one("metrics.`train/loss` < 1").key, "train/loss");
        assert_eq!(one("metrics.val-loss < 1").key, "val-loss");
        assert_eq!(one("metrics.1st > 0").key, "1st");
        assert_eq!(one("tags.`a``b` = 'v'").key, "a`b");
        assert_eq!(one("metrics.é > 0").key, "é");
    }

    #[test]
    fn quoting_styles_for_values() {
        assert_eq!(one("params.p = 'single'").value, s("single"));
        assert_eq!(one("params.p = \"double\"").value, s("double"));
        assert_eq!(one("params.p = \"it's\"").value, s("it's"));
        assert_eq!(one("params.p = 'it''s'").value, s("it's"));
        assert_eq!(one("params.p = 'say \"hi\"'").value, s("say \"hi\""));
        assert_eq!(one("params.p = ''").value, s(""));
        assert_eq!(one("params.p = 'a AND b'").value, s("a AND b"));
        assert_eq!(one("params.p = '  spaced  '").value, s("  spaced  "));
        // The injection attempt from the store tests is just a string.
        assert_eq!(one("params.x = 'a'' OR 1=1 --'").value, s("a' OR 1=1 --"));
    }

    #[test]
    fn malformed_keys() {
        err_has("foo.bar = 1", &["Invalid entity type 'foo'"]);
        err_has("tags. = 'x'", &["expected a key after 'tags.'", "'='"]);
        err_has("tags.`` = 'x'", &["empty tag key"]);
        err_has("tags.`a`.b = 'x'", &["quote the whole key"]);
        err_has(".a = 'x'", &["unexpected character '.'"]);
        err_has("= 'x'", &["expected an identifier", "'='"]);
        err_has("1 = 1", &["expected an identifier", "'1'"]);
        err_has("(metrics.a > 1)", &["expected an identifier", "'('"]);
    }

    #[test]
    fn conjunctions() {
        let clauses = parse_run_filter(
            "metrics.a > 1 and params.b = 'x' AND tags.c != 'y' And run_id IN ('r')",
        )
        .unwrap();
        assert_eq!(
            clauses,
            vec![
                cmp(Entity::Metric, "a", Op::Gt, Value::Number(1.0)),
                cmp(Entity::Param, "b", Op::Eq, s("x")),
                cmp(Entity::Tag, "c", Op::Ne, s("y")),
                cmp(Entity::Attribute, "run_id", Op::In, list(&["r"])),
            ]
        );
        // The same key twice is two conditions.
        assert_eq!(
            parse_run_filter("metrics.a > 1 AND metrics.a < 3")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn malformed_clauses_name_the_problem() {
        err_has(
            "metrics.acc >",
            &["Invalid clause(s) in filter string", "missing value"],
        );
        err_has(
            "metrics.acc",
            &["expected a comparison operator", "the end"],
        );
        err_has("metrics.acc 1", &["expected a comparison operator", "'1'"]);
        err_has("metrics.a ~ 1", &["unexpected character '~'"]);
        err_has("params.a <> 'x'", &["Invalid comparator '<'"]);
        err_has("status == 'x'", &["Invalid comparator '=='"]);
        err_has("metrics.a <> 1", &["Expected numeric value type", ">"]);
        err_has("params.x = 'unterminated", &["unterminated quote '"]);
        err_has("params.`x = 'y'", &["unterminated quote `"]);
        err_has(
            "metrics.a > 1 OR metrics.b > 2",
            &["Invalid clause(s)", "'OR'"],
        );
        err_has("metrics.a > 1 or metrics.b > 2", &["'OR' is not supported"]);
        err_has(
            "metrics.a > 1 metrics.b > 2",
            &["expected AND", "'metrics'"],
        );
        err_has("params.p = 'x' 'y'", &["expected AND", "''y''"]);
        err_has("metrics.a > 1 AND", &["must follow 'AND'"]);
        err_has("AND metrics.a > 1", &["expected an identifier", "'AND'"]);
        err_has(
            "metrics.a > 1 AND AND metrics.b > 1",
            &["expected an identifier", "'AND'"],
        );
        err_has("metrics.a > 1;", &["unexpected character ';'"]);
        err_has(
            "metrics.a > 1; DROP TABLE runs",
            &["unexpected character ';'"],
        );
        err_has(
            "metrics.a > 1 AND (metrics.b > 2)",
            &["expected an identifier", "'('"],
        );
    }

    #[test]
    fn run_order_by() {
        assert_eq!(
            order("metrics.acc DESC"),
            (Entity::Metric, "acc".into(), false)
        );
        assert_eq!(
            order("metrics.acc  desc"),
            (Entity::Metric, "acc".into(), false)
        );
        assert_eq!(order("params.x"), (Entity::Param, "x".into(), true));
        assert_eq!(order("tags.\"a b\" ASC"), (Entity::Tag, "a b".into(), true));
        assert_eq!(order("tags.`a b` asc"), (Entity::Tag, "a b".into(), true));
        assert_eq!(order("tags.'a b'"), (Entity::Tag, "a b".into(), true));
        assert_eq!(
            order("tags.mlflow.user"),
            (Entity::Tag, "mlflow.user".into(), true)
        );
        assert_eq!(
            order("attributes.start_time"),
            (Entity::Attribute, "start_time".into(), true)
        );
        assert_eq!(
            order("start_time"),
            (Entity::Attribute, "start_time".into(), true)
        );
        assert_eq!(
            order("created DESC"),
            (Entity::Attribute, "start_time".into(), false)
        );
        assert_eq!(
            order("attr.end_time DESC"),
            (Entity::Attribute, "end_time".into(), false)
        );
        assert_eq!(
            order("run_name"),
            (Entity::Attribute, "run_name".into(), true)
        );
        assert_eq!(
            order("  metrics.acc  "),
            (Entity::Metric, "acc".into(), true)
        );
    }

    #[test]
    fn malformed_run_order_by() {
        assert!(order_err("").contains("Could not be parsed"));
        assert!(order_err("   ").contains("Could not be parsed"));
        let m = order_err("metrics.acc sideways");
        assert!(
            m.contains("Invalid ordering key") && m.contains("'sideways'"),
            "{m}"
        );
        let m = order_err("metrics.acc DESC extra");
        assert!(
            m.contains("Could not be parsed") && m.contains("'extra'"),
            "{m}"
        );
        let m = order_err("attributes.nope");
        assert!(m.contains("Invalid attribute key 'nope'"), "{m}");
        let m = order_err("foo.bar");
        assert!(m.contains("Invalid entity type 'foo'"), "{m}");
        let m = order_err("datasets.name");
        assert!(m.contains("Invalid order_by entity"), "{m}");
        let m = order_err("metrics.acc, params.b");
        assert!(m.contains("','"), "{m}");
        let m = order_err("tags.`unterminated");
        assert!(m.contains("unterminated quote"), "{m}");
        let m = order_err("experiment_id");
        assert!(m.contains("Invalid attribute key 'experiment_id'"), "{m}");
        let m = order_err("lifecycle_stage");
        assert!(m.contains("Invalid attribute key 'lifecycle_stage'"), "{m}");
    }

    #[test]
    fn experiment_filters() {
        let c = parse_experiment_filter("name LIKE 'exp%' and tags.team = 'a'").unwrap();
        assert_eq!(
            c,
            vec![
                cmp(Entity::Attribute, "name", Op::Like, s("exp%")),
                cmp(Entity::Tag, "team", Op::Eq, s("a")),
            ]
        );
        for op in ["=", "!=", "LIKE", "ILIKE"] {
            let c = parse_experiment_filter(&format!("attribute.name {op} 'x'")).unwrap();
            assert_eq!(c[0].key, "name");
        }
        for key in ["creation_time", "last_update_time"] {
            for op in ["=", "!=", "<", "<=", ">", ">="] {
                let c = parse_experiment_filter(&format!("{key} {op} 100")).unwrap();
                assert_eq!(c[0].value, Value::Number(100.0));
            }
        }
        assert_eq!(
            parse_experiment_filter("experiment_id = '1'").unwrap()[0],
            cmp(Entity::Attribute, "experiment_id", Op::Eq, s("1"))
        );
        assert_eq!(
            parse_experiment_filter("experiment_id NOT IN ('1', '2')").unwrap()[0].value,
            list(&["1", "2"])
        );
        assert_eq!(
            parse_experiment_filter("tags.t IS NULL").unwrap()[0].op,
            Op::IsNull
        );
        assert_eq!(
            parse_experiment_filter("tag.`a b` ILIKE '%x%'").unwrap()[0].key,
            "a b"
        );
    }

    #[test]
    fn malformed_experiment_filters() {
        assert!(exp_err("metrics.a > 1").contains("Invalid entity type 'metric'"));
        assert!(exp_err("params.p = 'x'").contains("Invalid entity type 'parameter'"));
        assert!(exp_err("datasets.name = 'x'").contains("Invalid entity type 'dataset'"));
        for key in ["status", "lifecycle_stage", "artifact_location"] {
            let m = exp_err(&format!("attributes.{key} = 'x'"));
            assert!(m.contains(&format!("Invalid attribute key '{key}'")), "{m}");
        }
        assert!(exp_err("name > 'x'").contains("Invalid comparator '>'"));
        assert!(exp_err("name IN ('a')").contains("Only ['experiment_id']"));
        assert!(exp_err("name IS NULL").contains("Invalid comparator 'IS NULL'"));
        assert!(exp_err("creation_time LIKE 5").contains("Invalid comparator 'LIKE'"));
        assert!(exp_err("creation_time > '5'").contains("Expected numeric value type"));
        assert!(exp_err("creation_time > 5.5").contains("Invalid value for numeric attribute"));
        assert!(exp_err("experiment_id > '1'").contains("Invalid comparator '>'"));
        assert!(exp_err("experiment_id LIKE '1'").contains("Invalid comparator 'LIKE'"));
        assert!(exp_err("experiment_id = 1").contains("Expected a quoted string value"));
        assert!(exp_err("experiment_id = 'abc'").contains("Invalid experiment ID 'abc'"));
        assert!(exp_err("experiment_id IN ('1', 'x')").contains("Invalid experiment ID 'x'"));
        assert!(exp_err("name IS NULL").contains("only supported for tags"));
        assert!(exp_err("tags.t > 'x'").contains("Invalid comparator '>'"));
        assert!(exp_err("tags.t IN ('x')").contains("Invalid comparator 'IN'"));
    }

    #[test]
    fn experiment_order_by() {
        for key in ["name", "experiment_id", "creation_time", "last_update_time"] {
            let o = parse_experiment_order_by(&format!("{key} DESC")).unwrap();
            assert_eq!(
                (o.entity, o.key.as_str(), o.ascending),
                (Entity::Attribute, key, false)
            );
            let o = parse_experiment_order_by(&format!("attribute.{key}")).unwrap();
            assert!(o.ascending);
        }
        for bad in ["start_time", "tags.t", "metrics.m", "name sideways", ""] {
            let e = parse_experiment_order_by(bad).expect_err(bad);
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
        assert!(
            parse_experiment_order_by("tags.t")
                .unwrap_err()
                .message
                .contains("Invalid order_by entity")
        );
    }

    #[test]
    fn logged_models_grammar() {
        let c = parse_logged_model_filter("name = 'm' AND metrics.acc > 0.5").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            parse_logged_model_filter("creation_time > 1").unwrap()[0].key,
            "creation_timestamp"
        );
        assert_eq!(
            parse_logged_model_filter("status IN ('READY')").unwrap()[0].op,
            Op::In
        );
        assert!(parse_logged_model_filter("datasets.name = 'x'").is_err());
        assert!(parse_logged_model_filter("tags.t IS NULL").is_err());
        assert!(parse_logged_model_filter("metrics.acc > '0.5'").is_err());
    }
}

#[cfg(test)]
mod registry_tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn registered_model_filters() {
        let c = parse_registered_model_filter("name LIKE 'fraud%' AND tags.team = 'risk'").unwrap();
        assert_eq!((c[0].key.as_str(), c[0].op), ("name", Op::Like));
        assert_eq!((c[1].entity, c[1].key.as_str()), (Entity::Tag, "team"));
        // What the official client adds to every registered-model search.
        let c = parse_registered_model_filter("tag.`mlflow.prompt.is_prompt` != 'true'").unwrap();
        assert_eq!(
            (c[0].key.as_str(), c[0].op),
            ("mlflow.prompt.is_prompt", Op::Ne)
        );
        let c = parse_registered_model_filter("name IN ('a', 'b')").unwrap();
        assert_eq!(c[0].value, Value::List(vec!["a".into(), "b".into()]));
        for bad in [
            "run_id = 'x'",
            "metrics.a > 1",
            "params.p = 'x'",
            "name > 'a'",
            "tags.t IS NULL",
            "tags.t IN ('a')",
        ] {
            let e = parse_registered_model_filter(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
        assert!(
            parse_registered_model_filter("run_id = 'x'")
                .unwrap_err()
                .message
                .contains("Invalid attribute key 'run_id'")
        );
    }

    #[test]
    fn model_version_filters() {
        let c = parse_model_version_filter(
            "name = 'm' and run_id IN ('r1','r2') and source_path LIKE 'runs:/%' \
             and version_number >= 3 and tags.`k` ILIKE '%x%'",
        )
        .unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(c[1].op, Op::In);
        assert_eq!(c[3].value, Value::Number(3.0));
        assert_eq!(c[4].entity, Entity::Tag);
        assert_eq!(
            parse_model_version_filter("version_number = '2'").unwrap()[0].value,
            Value::Number(2.0)
        );
        for bad in [
            "foo = 'x'",
            "source_path IN ('a')",
            "version_number LIKE '1'",
            "version_number = 'abc'",
            "version_number = 'nan'",
            "run_id > 'a'",
            "metrics.m > 1",
        ] {
            let e = parse_model_version_filter(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
    }

    #[test]
    fn registry_order_by() {
        let o = parse_registered_model_order_by("timestamp DESC").unwrap();
        assert_eq!(
            (o.key.as_str(), o.ascending),
            ("last_updated_timestamp", false)
        );
        assert_eq!(parse_registered_model_order_by("name").unwrap().key, "name");
        assert!(parse_registered_model_order_by("version_number").is_err());
        let o = parse_model_version_order_by("version_number DESC").unwrap();
        assert_eq!((o.key.as_str(), o.ascending), ("version_number", false));
        assert!(parse_model_version_order_by("run_id").is_err());
        assert!(parse_model_version_order_by("tags.t").is_err());
    }
}
