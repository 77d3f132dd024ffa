//! MLflow's search-filter and order-by language, parsed into [`Comparison`]s and [`OrderBy`]s
//! that a store compiles to SQL with bound parameters.
//!
//! A filter is `entity.key op value` clauses joined by `AND`. Each searchable kind of thing
//! (runs, experiments, logged models) admits its own entities and attributes, described by a
//! [`Grammar`].

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
            Self::In => "IN",
            Self::NotIn => "NOT IN",
            Self::IsNull => "IS NULL",
            Self::IsNotNull => "IS NOT NULL",
        }
    }

    fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Eq | Self::Ne | Self::Lt | Self::Le | Self::Gt | Self::Ge
        )
    }

    fn is_string(self) -> bool {
        matches!(self, Self::Eq | Self::Ne | Self::Like | Self::ILike)
    }
}

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
    /// Entities other than attributes that may appear, with the comparators each takes.
    entities: &'static [Entity],
    /// Attribute keys compared as numbers, after aliasing.
    numeric_attributes: &'static [&'static str],
    /// Attribute keys compared as strings, after aliasing.
    string_attributes: &'static [&'static str],
    /// Attribute keys that take `IN` / `NOT IN`.
    list_attributes: &'static [&'static str],
    /// Attribute keys allowed in `order_by`, after aliasing.
    order_attributes: &'static [&'static str],
    /// Alternative spellings of attribute keys and what they mean.
    aliases: &'static [(&'static str, &'static str)],
    /// Whether params and tags accept `IS NULL` / `IS NOT NULL`.
    null_checks: bool,
}

pub const RUNS: Grammar = Grammar {
    entities: &[Entity::Metric, Entity::Param, Entity::Tag, Entity::Dataset],
    numeric_attributes: &["start_time", "end_time"],
    string_attributes: &["run_id", "run_name", "status", "user_id", "artifact_uri"],
    list_attributes: &["run_id"],
    order_attributes: &[
        "run_id",
        "run_name",
        "status",
        "user_id",
        "artifact_uri",
        "start_time",
        "end_time",
        "experiment_id",
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
};

pub const EXPERIMENTS: Grammar = Grammar {
    entities: &[Entity::Tag],
    numeric_attributes: &["creation_time", "last_update_time"],
    string_attributes: &["name"],
    list_attributes: &[],
    order_attributes: &["name", "experiment_id", "creation_time", "last_update_time"],
    aliases: &[],
    null_checks: true,
};

pub const LOGGED_MODELS: Grammar = Grammar {
    entities: &[Entity::Metric, Entity::Param, Entity::Tag],
    numeric_attributes: &["creation_timestamp", "last_updated_timestamp"],
    string_attributes: &["model_id", "name", "status", "model_type", "source_run_id"],
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
};

pub fn parse_run_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &RUNS)
}

pub fn parse_run_order_by(clause: &str) -> Result<OrderBy> {
    parse_order_by(clause, &RUNS)
}

pub fn parse_experiment_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &EXPERIMENTS)
}

pub fn parse_experiment_order_by(clause: &str) -> Result<OrderBy> {
    parse_order_by(clause, &EXPERIMENTS)
}

pub fn parse_logged_model_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &LOGGED_MODELS)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word: an identifier (possibly dotted) or a keyword.
    Word(String),
    /// A `'…'` or `"…"` string.
    Str(String),
    /// A `` `…` `` quoted identifier.
    Quoted(String),
    Number(f64),
    Op(Op),
    LParen,
    RParen,
    Comma,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) => format!("'{w}'"),
        Token::Str(s) => format!("'{s}'"),
        Token::Quoted(s) => format!("`{s}`"),
        Token::Number(n) => format!("'{n}'"),
        Token::Op(op) => format!("'{}'", op.as_str()),
        Token::LParen => "'('".into(),
        Token::RParen => "')'".into(),
        Token::Comma => "','".into(),
    }
}

fn tokenize(input: &str) -> Result<Vec<Token>> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '=' => {
                tokens.push(Token::Op(Op::Eq));
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Op(Op::Ne));
                i += 2;
            }
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', true) => Op::Le,
                    ('<', false) => Op::Lt,
                    ('>', true) => Op::Ge,
                    _ => Op::Gt,
                };
                tokens.push(Token::Op(op));
                i += if eq { 2 } else { 1 };
            }
            '\'' | '"' | '`' => {
                let quote = c;
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(Error::invalid(format!(
                                "Invalid filter string: unterminated quote {quote} starting at \
                                 character {i} in '{input}'"
                            )));
                        }
                        // A doubled quote inside a string stands for the quote itself.
                        Some(&q) if q == quote && chars.get(j + 1) == Some(&quote) => {
                            text.push(quote);
                            j += 2;
                        }
                        Some(&q) if q == quote => break,
                        Some(&other) => {
                            text.push(other);
                            j += 1;
                        }
                    }
                }
                tokens.push(if quote == '`' {
                    Token::Quoted(text)
                } else {
                    Token::Str(text)
                });
                i = j + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+' || c == '.')
                    && chars
                        .get(i + 1)
                        .is_some_and(|n| n.is_ascii_digit() || *n == '.')) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    let exp_sign = (d == '-' || d == '+') && matches!(chars[i - 1], 'e' | 'E');
                    if d.is_ascii_digit() || d == '.' || d == 'e' || d == 'E' || exp_sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                let text: String = chars[start..i].iter().collect();
                let n = text.parse().map_err(|_| {
                    Error::invalid(format!("Invalid filter string: bad number '{text}'"))
                })?;
                tokens.push(Token::Number(n));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '.' | '-' | ':'))
                {
                    i += 1;
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
            other => {
                return Err(Error::invalid(format!(
                    "Invalid filter string: unexpected character '{other}' at position {i} in \
                     '{input}'"
                )));
            }
        }
    }
    Ok(tokens)
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

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

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    grammar: &'a Grammar,
    input: &'a str,
}

impl Parser<'_> {
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

    /// `entity.key`, `entity."quoted key"`, `` entity.`key` ``, `` `entity.key` ``, or a bare
    /// attribute name.
    fn identifier(&mut self) -> Result<(Entity, String)> {
        match self.next() {
            Some(Token::Word(word)) => {
                let Some((prefix, rest)) = word.split_once('.') else {
                    return Ok((Entity::Attribute, word));
                };
                let entity = entity_of(prefix).ok_or_else(|| {
                    Error::invalid(format!(
                        "Invalid entity type '{prefix}'. Valid values are ['metric', \
                         'parameter', 'tag', 'attribute', 'dataset']"
                    ))
                })?;
                if !rest.is_empty() {
                    return Ok((entity, rest.to_string()));
                }
                // `params."my key"`: the word ended at the dot, a quoted key follows.
                match self.next() {
                    Some(Token::Str(key) | Token::Quoted(key)) => Ok((entity, key)),
                    other => Err(self.error(format!(
                        "expected a key after '{word}', found {}",
                        other.as_ref().map_or("the end".into(), describe)
                    ))),
                }
            }
            Some(Token::Quoted(whole)) => match whole.split_once('.') {
                Some((prefix, key)) if entity_of(prefix).is_some() => Ok((
                    entity_of(prefix).unwrap_or(Entity::Attribute),
                    key.to_string(),
                )),
                _ => Ok((Entity::Attribute, whole)),
            },
            Some(Token::Str(whole)) => Ok((Entity::Attribute, whole)),
            other => Err(self.error(format!(
                "expected an identifier, found {}",
                other.as_ref().map_or("the end".into(), describe)
            ))),
        }
    }

    fn attribute(&self, key: &str, order: bool) -> Result<String> {
        let key = self
            .grammar
            .aliases
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(key, |(_, canonical)| canonical);
        let g = self.grammar;
        let valid: Vec<&str> = if order {
            g.order_attributes.to_vec()
        } else {
            g.numeric_attributes
                .iter()
                .chain(g.string_attributes)
                .copied()
                .collect()
        };
        if !valid.contains(&key) {
            return Err(Error::invalid(format!(
                "Invalid attribute key '{key}' specified. Valid keys are '{valid:?}'"
            )));
        }
        Ok(key.to_string())
    }

    fn operator(&mut self) -> Result<Op> {
        match self.next() {
            Some(Token::Op(op)) => Ok(op),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("LIKE") => Ok(Op::Like),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ILIKE") => Ok(Op::ILike),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("IN") => Ok(Op::In),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("NOT") => {
                if keyword(self.peek(), "IN") {
                    self.pos += 1;
                    Ok(Op::NotIn)
                } else {
                    Err(self.error("expected IN after NOT"))
                }
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("IS") => {
                let not = keyword(self.peek(), "NOT");
                if not {
                    self.pos += 1;
                }
                if keyword(self.peek(), "NULL") {
                    self.pos += 1;
                    Ok(if not { Op::IsNotNull } else { Op::IsNull })
                } else {
                    Err(self.error("expected NULL after IS"))
                }
            }
            other => Err(self.error(format!(
                "expected a comparison operator, found {}",
                other.as_ref().map_or("the end".into(), describe)
            ))),
        }
    }

    fn list(&mut self) -> Result<Vec<String>> {
        if self.next() != Some(Token::LParen) {
            return Err(self.error("expected a parenthesised list of strings after IN"));
        }
        let mut items = Vec::new();
        loop {
            match self.next() {
                Some(Token::Str(s)) => items.push(s),
                other => {
                    return Err(self.error(format!(
                        "expected a quoted string in the IN list, found {}",
                        other.as_ref().map_or("the end".into(), describe)
                    )));
                }
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::RParen) => break,
                other => {
                    return Err(self.error(format!(
                        "expected ',' or ')' in the IN list, found {}",
                        other.as_ref().map_or("the end".into(), describe)
                    )));
                }
            }
        }
        Ok(items)
    }

    fn clause(&mut self) -> Result<Comparison> {
        let (entity, key) = self.identifier()?;
        if entity != Entity::Attribute && !self.grammar.entities.contains(&entity) {
            return Err(Error::invalid(format!(
                "Invalid entity type '{}' for this search",
                entity.name()
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
        let numeric = entity == Entity::Metric
            || (entity == Entity::Attribute
                && self.grammar.numeric_attributes.contains(&key.as_str()));
        let allowed = match entity {
            Entity::Metric => op.is_numeric(),
            Entity::Param | Entity::Tag => {
                op.is_string()
                    || (self.grammar.null_checks && matches!(op, Op::IsNull | Op::IsNotNull))
            }
            Entity::Dataset => op.is_string() || matches!(op, Op::In | Op::NotIn),
            Entity::Attribute if numeric => op.is_numeric(),
            Entity::Attribute => {
                op.is_string()
                    || (matches!(op, Op::In | Op::NotIn)
                        && self.grammar.list_attributes.contains(&key.as_str()))
            }
        };
        if !allowed {
            return Err(Error::invalid(format!(
                "Invalid comparator '{}' for {} '{key}'",
                op.as_str(),
                entity.name()
            )));
        }
        let value = match op {
            Op::IsNull | Op::IsNotNull => Value::None,
            Op::In | Op::NotIn => Value::List(self.list()?),
            _ => match self.next() {
                Some(Token::Number(n)) if numeric => Value::Number(n),
                Some(Token::Str(s)) if !numeric => Value::Str(s),
                Some(Token::Str(s)) if numeric => Value::Number(s.parse().map_err(|_| {
                    Error::invalid(format!(
                        "Expected numeric value type for {} '{key}', got '{s}'",
                        entity.name()
                    ))
                })?),
                Some(token) if numeric => {
                    return Err(Error::invalid(format!(
                        "Expected numeric value type for {} '{key}', got {}",
                        entity.name(),
                        describe(&token)
                    )));
                }
                Some(token) => {
                    return Err(Error::invalid(format!(
                        "Expected a quoted string value for {} '{key}', got {}",
                        entity.name(),
                        describe(&token)
                    )));
                }
                None => return Err(self.error(format!("missing value after '{}'", op.as_str()))),
            },
        };
        Ok(Comparison {
            entity,
            key,
            op,
            value,
        })
    }
}

/// Parses a filter with `grammar`; an empty filter is no condition.
pub fn parse_filter(filter: &str, grammar: &Grammar) -> Result<Vec<Comparison>> {
    let mut parser = Parser {
        tokens: tokenize(filter)?,
        pos: 0,
        grammar,
        input: filter,
    };
    let mut clauses = Vec::new();
    if parser.tokens.is_empty() {
        return Ok(clauses);
    }
    loop {
        clauses.push(parser.clause()?);
        match parser.next() {
            None => return Ok(clauses),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => {}
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(parser.error("'OR' is not supported; join clauses with AND"));
            }
            Some(other) => {
                return Err(parser.error(format!(
                    "expected AND or the end, found {}",
                    describe(&other)
                )));
            }
        }
        if parser.peek().is_none() {
            return Err(parser.error("a clause must follow AND"));
        }
    }
}

/// Parses one `order_by` item: an identifier, then optionally `ASC` or `DESC`.
pub fn parse_order_by(clause: &str, grammar: &Grammar) -> Result<OrderBy> {
    let mut parser = Parser {
        tokens: tokenize(clause)?,
        pos: 0,
        grammar,
        input: clause,
    };
    let bad = |why: String| Error::invalid(format!("Invalid order_by clause '{clause}': {why}"));
    if parser.tokens.is_empty() {
        return Err(bad("it is empty".into()));
    }
    let (entity, key) = parser.identifier()?;
    let key = match entity {
        Entity::Attribute => parser.attribute(&key, true)?,
        Entity::Dataset => return Err(bad("datasets cannot order results".into())),
        e if !grammar.entities.contains(&e) => {
            return Err(bad(format!("cannot order by {}s", e.name())));
        }
        _ => key,
    };
    let ascending = match parser.next() {
        None => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("ASC") => true,
        Some(Token::Word(w)) if w.eq_ignore_ascii_case("DESC") => false,
        Some(other) => {
            return Err(bad(format!(
                "expected ASC or DESC, found {}",
                describe(&other)
            )));
        }
    };
    if let Some(extra) = parser.next() {
        return Err(bad(format!("unexpected {} at the end", describe(&extra))));
    }
    Ok(OrderBy {
        entity,
        key,
        ascending,
    })
}

/// Registered models (MLflow's `SearchModelUtils`): `name` and tags; ordered by name or time.
pub const REGISTERED_MODELS: Grammar = Grammar {
    entities: &[Entity::Tag],
    numeric_attributes: &[],
    string_attributes: &["name"],
    list_attributes: &["name"],
    order_attributes: &["name", "creation_timestamp", "last_updated_timestamp"],
    aliases: &[("timestamp", "last_updated_timestamp")],
    null_checks: false,
};

/// Model versions (MLflow's `SearchModelVersionUtils`): name, run id, source and version number,
/// and tags.
pub const MODEL_VERSIONS: Grammar = Grammar {
    entities: &[Entity::Tag],
    numeric_attributes: &["version_number"],
    string_attributes: &["name", "run_id", "source_path"],
    list_attributes: &["name", "run_id"],
    order_attributes: &[
        "name",
        "version_number",
        "creation_timestamp",
        "last_updated_timestamp",
    ],
    aliases: &[("timestamp", "last_updated_timestamp")],
    null_checks: false,
};

pub fn parse_registered_model_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &REGISTERED_MODELS)
}

pub fn parse_registered_model_order_by(clause: &str) -> Result<OrderBy> {
    attribute_order(parse_order_by(clause, &REGISTERED_MODELS)?, clause)
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

pub fn parse_model_version_filter(filter: &str) -> Result<Vec<Comparison>> {
    parse_filter(filter, &MODEL_VERSIONS)
}

pub fn parse_model_version_order_by(clause: &str) -> Result<OrderBy> {
    attribute_order(parse_order_by(clause, &MODEL_VERSIONS)?, clause)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn one(filter: &str) -> Comparison {
        let mut clauses = parse_run_filter(filter).unwrap();
        assert_eq!(clauses.len(), 1, "{filter}");
        clauses.remove(0)
    }

    fn err(filter: &str) -> String {
        let e = parse_run_filter(filter).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{filter}");
        e.message
    }

    #[test]
    fn empty_filter_is_no_condition() {
        assert!(parse_run_filter("").unwrap().is_empty());
        assert!(parse_run_filter("   ").unwrap().is_empty());
    }

    #[test]
    fn entity_aliases() {
        for (prefix, entity) in [
            ("metric", Entity::Metric),
            ("metrics", Entity::Metric),
            ("param", Entity::Param),
            ("params", Entity::Param),
            ("parameter", Entity::Param),
            ("parameters", Entity::Param),
            ("tag", Entity::Tag),
            ("tags", Entity::Tag),
        ] {
            let value = if entity == Entity::Metric { "1" } else { "'x'" };
            let c = one(&format!("{prefix}.k = {value}"));
            assert_eq!((c.entity, c.key.as_str()), (entity, "k"), "{prefix}");
        }
        for prefix in ["attribute", "attributes", "attr", "run"] {
            let c = one(&format!("{prefix}.status = 'FINISHED'"));
            assert_eq!((c.entity, c.key.as_str()), (Entity::Attribute, "status"));
        }
        let c = one("datasets.name = 'train'");
        assert_eq!(c.entity, Entity::Dataset);
    }

    #[test]
    fn every_operator() {
        for (op, want) in [
            ("=", Op::Eq),
            ("!=", Op::Ne),
            ("<", Op::Lt),
            ("<=", Op::Le),
            (">", Op::Gt),
            (">=", Op::Ge),
        ] {
            let c = one(&format!("metrics.acc {op} 0.5"));
            assert_eq!((c.op, c.value), (want, Value::Number(0.5)));
        }
        assert_eq!(one("params.p LIKE 'a%'").op, Op::Like);
        assert_eq!(one("params.p like 'a%'").op, Op::Like);
        assert_eq!(one("tags.t ILIKE '%A'").op, Op::ILike);
        let c = one("attributes.run_id IN ('a', 'b')");
        assert_eq!(
            (c.op, c.value),
            (Op::In, Value::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(one("run_id not in ('a')").op, Op::NotIn);
        assert_eq!(one("tags.t IS NULL").op, Op::IsNull);
        assert_eq!(one("params.p is not null").op, Op::IsNotNull);
    }

    #[test]
    fn quoting_styles() {
        assert_eq!(one("params.\"my key\" = 'v'").key, "my key");
        assert_eq!(one("params.`my key` = 'v'").key, "my key");
        assert_eq!(one("`params.my key` = 'v'").key, "my key");
        assert_eq!(one("tags.mlflow.user = 'me'").key, "mlflow.user");
        assert_eq!(one("tags.`mlflow.runName` = 'r'").key, "mlflow.runName");
        assert_eq!(
            one("params.p = \"double\"").value,
            Value::Str("double".into())
        );
        assert_eq!(one("params.p = 'it''s'").value, Value::Str("it's".into()));
    }

    #[test]
    fn attributes_and_aliases() {
        assert_eq!(one("attributes.created > 5").key, "start_time");
        assert_eq!(one("attributes.`run name` = 'x'").key, "run_name");
        assert_eq!(one("start_time >= 10").value, Value::Number(10.0));
        assert_eq!(one("end_time < -1e3").value, Value::Number(-1000.0));
        assert_eq!(one("run_name = 'r'").key, "run_name");
    }

    #[test]
    fn conjunctions() {
        let clauses =
            parse_run_filter("metrics.a > 1 and params.b = 'x' AND tags.c != 'y'").unwrap();
        assert_eq!(clauses.len(), 3);
        assert_eq!(clauses[2].op, Op::Ne);
    }

    #[test]
    fn malformed_filters_name_the_problem() {
        assert!(err("metrics.acc >").contains("missing value"));
        assert!(err("foo.bar = 1").contains("Invalid entity type 'foo'"));
        assert!(err("params.x = 'unterminated").contains("unterminated quote"));
        assert!(err("attributes.nope = 'x'").contains("Invalid attribute key 'nope'"));
        assert!(err("metrics.a > 1 OR metrics.b > 2").contains("OR"));
        assert!(err("metrics.a > 1 metrics.b > 2").contains("expected AND"));
        assert!(err("metrics.a > 1 AND").contains("must follow AND"));
        assert!(err("metrics.a LIKE 'x'").contains("Invalid comparator 'LIKE'"));
        assert!(err("params.p > 'x'").contains("Invalid comparator '>'"));
        assert!(err("metrics.a = 'abc'").contains("Expected numeric value"));
        assert!(err("params.p = 5").contains("Expected a quoted string"));
        assert!(err("status IN ('a')").contains("Invalid comparator 'IN'"));
        assert!(err("run_id IN 'a'").contains("parenthesised list"));
        assert!(err("run_id IN ('a' 'b')").contains("expected ',' or ')'"));
        assert!(err("metrics.a ~ 1").contains("unexpected character '~'"));
        assert!(err("datasets.size = 'x'").contains("Invalid dataset key"));
        assert!(err("metrics.a").contains("expected a comparison operator"));
    }

    #[test]
    fn order_by() {
        let o = parse_run_order_by("metrics.acc DESC").unwrap();
        assert_eq!(
            (o.entity, o.key.as_str(), o.ascending),
            (Entity::Metric, "acc", false)
        );
        let o = parse_run_order_by("params.`a b`").unwrap();
        assert_eq!(
            (o.entity, o.key.as_str(), o.ascending),
            (Entity::Param, "a b", true)
        );
        let o = parse_run_order_by("start_time asc").unwrap();
        assert_eq!(o.entity, Entity::Attribute);
        assert_eq!(
            parse_run_order_by("attributes.created").unwrap().key,
            "start_time"
        );
        for bad in [
            "",
            "metrics.acc sideways",
            "attributes.nope",
            "metrics.a DESC extra",
        ] {
            let e = parse_run_order_by(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
    }

    #[test]
    fn experiments_grammar() {
        let c = parse_experiment_filter("name LIKE 'exp%' and tags.team = 'a'").unwrap();
        assert_eq!(c[0].key, "name");
        assert_eq!(c[1].entity, Entity::Tag);
        assert!(parse_experiment_filter("creation_time > 100").is_ok());
        assert!(parse_experiment_filter("metrics.a > 1").is_err());
        assert!(parse_experiment_filter("attributes.status = 'x'").is_err());
        assert!(
            !parse_experiment_order_by("last_update_time DESC")
                .unwrap()
                .ascending
        );
        assert!(parse_experiment_order_by("start_time").is_err());
    }

    #[test]
    fn logged_models_grammar() {
        let c = parse_logged_model_filter("name = 'm' AND metrics.acc > 0.5").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(
            parse_logged_model_filter("creation_time > 1").unwrap()[0].key,
            "creation_timestamp"
        );
        assert!(parse_logged_model_filter("datasets.name = 'x'").is_err());
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
