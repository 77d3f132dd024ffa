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

use crate::pyjson::repr_str;
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
    /// Which of MLflow's search utilities (and store) words this search's errors.
    dialect: Dialect,
}

/// MLflow parses each kind of search with its own utility class and checks comparators in its
/// own store code, so the same mistake reads differently per search; clients see those texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `SearchUtils` and the tracking store's run search.
    Runs,
    /// `SearchExperimentsUtils` and `_get_search_experiments_filter_clauses`.
    Experiments,
    /// `SearchModelUtils` and the registry store.
    RegisteredModels,
    /// `SearchModelVersionUtils` and the registry store.
    ModelVersions,
    /// `SearchLoggedModelsUtils`.
    LoggedModels,
    /// `SearchEvaluationDatasetsUtils`.
    EvaluationDatasets,
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
    // The canonical names among MLflow's keys.
    order_attributes: RUN_ATTRIBUTE_KEYS.split_at(7).0,
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
    dialect: Dialect::Runs,
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
    dialect: Dialect::Experiments,
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
    dialect: Dialect::LoggedModels,
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
    // MLflow's registry store orders models by name or last update only.
    order_attributes: &["name", "last_updated_timestamp"],
    aliases: &[("timestamp", "last_updated_timestamp")],
    null_checks: false,
    quoted_numbers: true,
    dialect: Dialect::RegisteredModels,
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
    dialect: Dialect::ModelVersions,
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
    dialect: Dialect::EvaluationDatasets,
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
fn attribute_order(order: OrderBy, _clause: &str) -> Result<OrderBy> {
    if order.entity != Entity::Attribute {
        return Err(Error::invalid(format!(
            "Invalid order_by entity: {}",
            order.entity.name()
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
    /// `==` or `<>`: not comparators, but MLflow's parser reads them as such and refuses them
    /// with the comparator error of the key's kind.
    BadOp(String),
    /// A quote that is never closed.
    Stray(char),
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
            Self::BadOp(text) => text.clone(),
            Self::Stray(quote) => quote.to_string(),
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
                tokens.push(Token::BadOp("==".into()));
                i += 2;
            }
            '<' if next == Some('>') => {
                tokens.push(Token::BadOp("<>".into()));
                i += 2;
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
            '\'' | '"' | '`' => match quoted(&chars, i) {
                Some((text, end)) => {
                    tokens.push(Token::Quoted(c, text));
                    i = end;
                }
                // MLflow's SQL lexer takes an unclosed quote for a token of its own and reads
                // on after it; so does this one, and the filter is refused for it.
                None => {
                    tokens.push(Token::Stray(c));
                    i += 1;
                }
            },
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
/// for the quote itself. Returns the text and the index after the closing quote, or `None`
/// when the quote is not closed.
fn quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let quote = chars[start];
    let mut text = String::new();
    let mut j = start + 1;
    loop {
        match chars.get(j) {
            None => return None,
            Some(&q) if q == quote && chars.get(j + 1) == Some(&quote) => {
                text.push(quote);
                j += 2;
            }
            Some(&q) if q == quote => return Some((text, j + 1)),
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

// ---------------------------------------------------------------------------------------------
// MLflow's error texts
//
// Each search answers a malformed filter or order_by in the words of MLflow 3.17's code for
// that search (`mlflow/utils/search_utils.py` and the SQL stores), quirks included (some of its
// messages lack a closing quote). Where MLflow prints one of its Python sets, the members are
// MLflow's and printed as `str(set)` does; Python orders them differently in every process
// (string hashing is salted), so no order is MLflow's and the one here is fixed.

/// `SearchUtils.VALID_METRIC_COMPARATORS` (and the numeric attributes').
const PY_METRIC_COMPARATORS: &[&str] = &[">", ">=", "!=", "=", "<", "<="];
/// `VALID_PARAM_COMPARATORS` and `VALID_TAG_COMPARATORS` of run search.
const PY_TAG_COMPARATORS: &[&str] = &["!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL"];
/// `VALID_STRING_ATTRIBUTE_COMPARATORS` and `VALID_DATASET_COMPARATORS`.
const PY_STRING_COMPARATORS: &[&str] = &["!=", "=", "LIKE", "ILIKE", "IN", "NOT IN"];
/// `SearchUtils.VALID_SEARCH_ATTRIBUTE_KEYS`: a run's attributes and their alternative
/// spellings (the first nine also order runs).
const RUN_ATTRIBUTE_KEYS: &[&str] = &[
    "run_id",
    "run_name",
    "status",
    "user_id",
    "artifact_uri",
    "start_time",
    "end_time",
    "created",
    "Created",
    "run name",
    "Run name",
    "Run Name",
];
/// The keys of a run's dataset (`SearchUtils.DATASET_ATTRIBUTES`).
const DATASET_KEYS: &[&str] = &["name", "digest", "context"];

/// `str(set)` of strings: `{'a', 'b'}`.
pub fn py_set(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| repr_str(i)).collect();
    format!("{{{}}}", quoted.join(", "))
}

/// An unquoted word (or a backtick-quoted one) where a string belongs (`_strip_quotes`).
pub fn not_quoted(text: &str) -> Error {
    Error::invalid(format!(
        "Parameter value is either not quoted or unidentified quote types used for string value \
         {text}. Use either single or double quotes."
    ))
}

/// A list for a key that takes none (`validate_list_supported`, the keys sorted).
fn list_not_supported(g: &Grammar) -> Error {
    let mut keys = g.list_attributes.to_vec();
    keys.sort_unstable();
    Error::invalid(format!(
        "Only {} attributes support comparison with a list of quoted string values.",
        key_list(&keys)
    ))
}

/// `Invalid comparator 'op' not one of '{…}'`; MLflow leaves out the closing quote in some.
fn not_one_of(op: &str, comparators: &[&str], closing_quote: bool) -> String {
    let end = if closing_quote { "'" } else { "" };
    format!(
        "Invalid comparator '{op}' not one of '{}{end}",
        py_set(comparators)
    )
}

impl Dialect {
    fn is_registry(self) -> bool {
        matches!(self, Self::RegisteredModels | Self::ModelVersions)
    }

    /// The entity prefixes this search takes, where it takes fewer than runs do.
    fn entity_prefixes(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Experiments | Self::RegisteredModels | Self::ModelVersions => {
                Some(&["attribute", "tag", "tags"])
            }
            // Every prefix but a dataset's: MLflow's log-model search has no datasets in filters.
            Self::LoggedModels => Some(&[
                "attribute",
                "attributes",
                "attr",
                "run",
                "metric",
                "metrics",
                "param",
                "params",
                "parameter",
                "parameters",
                "tag",
                "tags",
            ]),
            Self::Runs | Self::EvaluationDatasets => None,
        }
    }

    fn invalid_entity(self, prefix: &str) -> Error {
        Error::invalid(match self {
            Self::Experiments | Self::RegisteredModels | Self::ModelVersions => format!(
                "Invalid entity type '{prefix}'. Valid entity types are ('attribute', 'tag', \
                 'tags')"
            ),
            Self::LoggedModels => format!(
                "Invalid entity type: '{prefix}'. Expected one of ['attributes', 'metrics', \
                 'params', 'tags']."
            ),
            Self::Runs | Self::EvaluationDatasets => format!(
                "Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', \
                 'tag', 'attribute', 'dataset']"
            ),
        })
    }

    /// MLflow's set of the attribute keys a filter (or order_by) of this search takes,
    /// aliases included.
    fn attribute_keys(self, order: bool) -> &'static [&'static str] {
        match (self, order) {
            (Self::Runs, false) => RUN_ATTRIBUTE_KEYS,
            // The alternative spellings of `run_name` do not order runs.
            (Self::Runs, true) => &RUN_ATTRIBUTE_KEYS[..9],
            (Self::Experiments, _) => EXPERIMENTS.order_attributes,
            (Self::RegisteredModels, false) => &["name"],
            // `RECOMMENDED_ORDER_BY_KEYS_REGISTERED_MODELS`.
            (Self::RegisteredModels, true) => &["name", "timestamp"],
            (Self::ModelVersions, false) => &["name", "version_number", "run_id", "source_path"],
            (Self::ModelVersions, true) => MODEL_VERSIONS.order_attributes,
            (Self::EvaluationDatasets, false) => &[
                "name",
                "created_time",
                "last_update_time",
                "created_by",
                "last_updated_by",
            ],
            (Self::EvaluationDatasets, true) => EVALUATION_DATASETS.order_attributes,
            (Self::LoggedModels, _) => LOGGED_MODELS.order_attributes,
        }
    }

    fn invalid_attribute_key(self, key: &str, order: bool) -> Error {
        let valid = py_set(self.attribute_keys(order));
        Error::invalid(match (self, order) {
            (Self::EvaluationDatasets, _) => {
                format!("Invalid attribute key '{key}' specified. Valid keys are: {valid}")
            }
            (Self::RegisteredModels, true) => {
                format!("Invalid order by key '{key}' specified. Valid keys are '{valid}'")
            }
            _ => format!("Invalid attribute key '{key}' specified. Valid keys are '{valid}'"),
        })
    }

    fn invalid_dataset_key(self, key: &str) -> Error {
        Error::invalid(format!(
            "Invalid dataset key '{key}' specified. Valid keys are '{}'",
            py_set(DATASET_KEYS)
        ))
    }

    /// `IS NULL` / `IS NOT NULL` on a key kind that cannot be missing.
    fn null_check_refused(self, entity: Entity, key: &str) -> Option<Error> {
        let message = match (self, entity) {
            (_, Entity::Tag) | (Self::Runs | Self::EvaluationDatasets, Entity::Param) => {
                return None;
            }
            (Self::Runs | Self::EvaluationDatasets, _) => format!(
                "IS NULL / IS NOT NULL is only supported for tags and params, not for '{}' \
                 '{key}'",
                entity.name()
            ),
            (Self::Experiments, _) => format!(
                "IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'"
            ),
            // MLflow's registry answers these with a 500 and its log-model search with a
            // message about token counts: the comparator error says more.
            _ => return None,
        };
        Some(Error::invalid(message))
    }

    /// A value that is not a number where one belongs.
    fn not_numeric(self, entity: Entity, key: &str, text: &str) -> Error {
        Error::invalid(match (self, entity) {
            (Self::LoggedModels, _) => {
                format!(
                    "Expected numeric value type for {} '{key}'. Found {text}",
                    entity.name()
                )
            }
            (_, Entity::Metric) => format!("Expected numeric value type for metric. Found {text}"),
            _ => format!("Expected numeric value type for numeric attribute: {key}. Found {text}"),
        })
    }

    /// A value that is not a quoted string (nor a word) where one belongs.
    fn not_a_string(self, entity: Entity, text: &str) -> Error {
        Error::invalid(match (self, entity) {
            (_, Entity::Param | Entity::Tag) => format!(
                "Expected a quoted string value for {} (e.g. 'my-value'). Got value {text}",
                entity.name()
            ),
            (_, Entity::Dataset) => {
                format!("Expected a quoted string value for dataset attributes. Got value {text}")
            }
            (Self::RegisteredModels, _) => format!(
                "Expected a quoted string value or a list of quoted string values for \
                 attributes. Got value {text}"
            ),
            (Self::ModelVersions, _) => format!(
                "Only the '{}' attributes support comparison with numeric values.",
                py_set(&[
                    "version_number",
                    "creation_timestamp",
                    "last_updated_timestamp"
                ])
            ),
            _ => format!("Expected a quoted string value for attributes. Got value {text}"),
        })
    }

    /// A comparator the key does not take, in the words of the code that refuses it in
    /// MLflow; `None` where MLflow has none (it crashes or takes it).
    fn bad_comparator(
        self,
        kind: Kind,
        entity: Entity,
        key: &str,
        written: &str,
        op: &str,
        g: &Grammar,
    ) -> Option<Error> {
        let numeric = kind == Kind::Numeric;
        let message = match (self, entity) {
            (_, _) if matches!(op, "IS NULL" | "IS NOT NULL") && self != Dialect::Runs => {
                return None;
            }
            (Self::Runs, Entity::Metric) => not_one_of(op, PY_METRIC_COMPARATORS, false),
            (Self::Runs, Entity::Param) => not_one_of(op, PY_TAG_COMPARATORS, true),
            (Self::Runs, Entity::Tag) => not_one_of(op, PY_TAG_COMPARATORS, false),
            (Self::Runs, Entity::Dataset) => not_one_of(op, PY_STRING_COMPARATORS, false),
            (Self::Runs | Self::Experiments, Entity::Attribute)
                if numeric && !PY_METRIC_COMPARATORS.contains(&op) =>
            {
                not_one_of(op, PY_STRING_COMPARATORS, false)
            }
            (Self::Experiments, Entity::Attribute) if numeric => {
                format!("Invalid comparator for numeric attribute: {op}")
            }
            (Self::Experiments, Entity::Attribute) if g.id_attributes.contains(&key) => {
                format!("Invalid comparator for experiment_id: {op}")
            }
            (Self::Runs | Self::Experiments, Entity::Attribute)
                if !PY_STRING_COMPARATORS.contains(&op) =>
            {
                not_one_of(op, PY_STRING_COMPARATORS, true)
            }
            (Self::Experiments, Entity::Attribute) => {
                format!("Invalid comparator for string attribute: {op}")
            }
            (Self::Experiments | Self::RegisteredModels | Self::ModelVersions, Entity::Tag) => {
                format!("Invalid comparator for tag: {op}")
            }
            (Self::ModelVersions, Entity::Attribute) if numeric => {
                format!("Invalid comparator for attribute {key}: {op}")
            }
            (Self::RegisteredModels | Self::ModelVersions, Entity::Attribute) => {
                format!("Invalid comparator for attribute: {op}")
            }
            (Self::LoggedModels, _) => {
                let (prefix, column) = match entity {
                    Entity::Metric => ("metrics", written.to_string()),
                    Entity::Param => ("params", written.to_string()),
                    Entity::Tag => ("tags", written.to_string()),
                    // The numeric attributes are named by their `_ms` columns.
                    _ if numeric => ("attributes", format!("{key}_ms")),
                    _ => ("attributes", key.to_string()),
                };
                let expected = if numeric {
                    "('<', '<=', '>', '>=', '=', '!=')"
                } else {
                    "('=', '!=', 'LIKE', 'ILIKE', 'IN', 'NOT IN')"
                };
                format!(
                    "Invalid comparison operator for {prefix}.{column}: '{op}'. Expected one of \
                     {expected}."
                )
            }
            _ => return None,
        };
        Some(Error::invalid(message))
    }
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
    /// Reading the filter's shape only (MLflow's first pass): entities unchecked.
    structural: bool,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, grammar: &'a Grammar) -> Result<Self> {
        Ok(Self {
            tokens: tokenize(input)?,
            pos: 0,
            grammar,
            input,
            structural: false,
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
            // The entity is refused before its key is read, as MLflow refuses it.
            if segments.len() == 1 && !segments[0].1 && !self.structural {
                self.entity(&segments[0].0)?;
            }
            self.pos += 1;
            match self.peek().cloned() {
                Some(Token::Word(w)) => segments.push((w, false)),
                Some(Token::Quoted(_, s)) => segments.push((s, true)),
                // MLflow's run search takes `metrics.` (an empty key, which nothing has).
                _ if self.grammar.dialect == Dialect::Runs && segments.len() == 1 => {
                    segments.push((String::new(), false));
                    continue;
                }
                other => {
                    return Err(self.error(format!(
                        "expected a key after '{}.', found {}",
                        segments[0].0,
                        describe(other.as_ref())
                    )));
                }
            }
            self.pos += 1;
        }
        let (first, first_quoted) = segments.remove(0);
        let (entity, key) = if segments.is_empty() {
            // A quoted `entity.key` in one piece, or a bare attribute name.
            match first.split_once('.') {
                Some((prefix, key)) if first_quoted && entity_of(prefix).is_some() => {
                    (self.entity(prefix)?, key.to_string())
                }
                _ => (Entity::Attribute, first),
            }
        } else {
            let entity = self.entity(&first)?;
            if segments.len() > 1 && segments.iter().any(|(_, quoted)| *quoted) && !self.structural
            {
                let written: Vec<String> = segments.iter().map(|(s, _)| s.clone()).collect();
                return Err(self.error(format!(
                    "the key '{}' mixes quoted and dotted parts; quote the whole key",
                    written.join(".")
                )));
            }
            let key: Vec<String> = segments.into_iter().map(|(s, _)| s).collect();
            (entity, key.join("."))
        };
        if key.is_empty() && self.grammar.dialect != Dialect::Runs && !self.structural {
            return Err(self.error(format!("empty {} key", entity.name())));
        }
        Ok((entity, key))
    }

    /// The entity an identifier's prefix names, as this search spells them.
    fn entity(&self, prefix: &str) -> Result<Entity> {
        let dialect = self.grammar.dialect;
        if self.structural {
            return Ok(entity_of(prefix).unwrap_or(Entity::Attribute));
        }
        match (entity_of(prefix), dialect.entity_prefixes()) {
            (Some(entity), Some(valid)) if valid.contains(&prefix) => Ok(entity),
            (_, Some(_)) => Err(dialect.invalid_entity(prefix)),
            (Some(entity), None) => Ok(entity),
            (None, None) => Err(dialect.invalid_entity(prefix)),
        }
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
            return Err(g.dialect.invalid_attribute_key(key, order));
        }
        Ok(canonical.to_string())
    }

    /// The comparator: one of [`Op`], or, as MLflow's parser takes them too, `==`, `<>`,
    /// `NOT LIKE` and `NOT ILIKE` (refused later with the comparator error of the key's kind).
    fn operator(&mut self) -> Result<Comparator> {
        let token = self.next();
        let op = match &token {
            Some(Token::Op(op)) => *op,
            Some(Token::BadOp(text)) => return Ok(Comparator::Unknown(text.clone())),
            Some(t) if t.is_keyword("LIKE") => Op::Like,
            Some(t) if t.is_keyword("ILIKE") => Op::ILike,
            Some(t) if t.is_keyword("IN") => Op::In,
            Some(t) if t.is_keyword("NOT") => {
                if self.peek().is_some_and(|t| t.is_keyword("IN")) {
                    self.pos += 1;
                    Op::NotIn
                } else if let Some(like) = self
                    .peek()
                    .filter(|t| t.is_keyword("LIKE") || t.is_keyword("ILIKE"))
                {
                    let text = format!("NOT {}", like.text().to_uppercase());
                    self.pos += 1;
                    return Ok(Comparator::Unknown(text));
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
        Ok(Comparator::Op(op))
    }

    /// The value as written: one token, or a parenthesised list of them. What it may be is
    /// decided by [`Parser::value`], in the order MLflow checks it.
    fn raw_value(&mut self) -> Result<Raw> {
        match self.next() {
            None => Err(self.error("missing value at the end")),
            Some(Token::LParen) => {
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some(Token::RParen) if items.is_empty() => return Ok(Raw::List(items)),
                        Some(t @ (Token::Quoted(..) | Token::Number(..) | Token::Word(_))) => {
                            items.push(t)
                        }
                        other => {
                            return Err(self.error(format!(
                                "expected a quoted string in the list, found {}",
                                describe(other.as_ref())
                            )));
                        }
                    }
                    match self.next() {
                        Some(Token::Comma) if self.peek() == Some(&Token::RParen) => {
                            self.pos += 1;
                            return Ok(Raw::List(items));
                        }
                        Some(Token::Comma) => {}
                        Some(Token::RParen) => return Ok(Raw::List(items)),
                        other => {
                            return Err(self.error(format!(
                                "expected ',' or ')' in the list, found {}",
                                describe(other.as_ref())
                            )));
                        }
                    }
                }
            }
            Some(token) => Ok(Raw::One(token)),
        }
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
        let d = g.dialect;
        let (entity, written) = self.identifier()?;
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
            Entity::Attribute => self.attribute(&written, false)?,
            Entity::Dataset if !DATASET_KEYS.contains(&written.as_str()) => {
                return Err(d.invalid_dataset_key(&written));
            }
            _ => written.clone(),
        };
        let kind = self.kind(entity, &key);
        let comparator = self.operator()?;
        if let Comparator::Op(op @ (Op::IsNull | Op::IsNotNull)) = comparator {
            if let Some(refused) = d.null_check_refused(entity, &written) {
                return Err(refused);
            }
            self.check_comparator(kind, entity, &key, &written, &comparator)?;
            return Ok(Comparison {
                entity,
                key,
                op,
                value: Value::None,
            });
        }
        // MLflow's log-model search checks the comparator while parsing; the others check the
        // value first (`_get_value`) and the comparator after, in the store.
        if d == Dialect::LoggedModels {
            self.check_comparator(kind, entity, &key, &written, &comparator)?;
        }
        let raw = self.raw_value()?;
        let value = self.value(kind, entity, &key, &written, raw)?;
        self.check_comparator(kind, entity, &key, &written, &comparator)?;
        let Comparator::Op(op) = comparator else {
            unreachable!("check_comparator refuses comparators MLflow does not know")
        };
        let value = match (op, value) {
            (Op::In | Op::NotIn, v @ Value::List(_)) => v,
            (Op::In | Op::NotIn, other) => {
                return Err(Error::invalid(format!(
                    "Expected a parenthesised list of quoted strings for {} '{key}'. Got value {}",
                    entity.name(),
                    value_text(&other)
                )));
            }
            (_, Value::List(items)) => {
                let items: Vec<String> = items.iter().map(|i| repr_str(i)).collect();
                return Err(d.not_a_string(entity, &format!("({})", items.join(", "))));
            }
            (_, Value::Str(s)) if kind == Kind::Numeric => {
                Value::Number(self.numeric_text(&key, &s)?)
            }
            (_, v) => v,
        };
        if let Value::Number(n) = value
            && g.integer_attributes.contains(&key.as_str())
            && n.fract() != 0.0
        {
            return Err(Error::invalid(format!(
                "Invalid value for numeric attribute '{key}': '{}'",
                self.tokens[self.pos - 1].text()
            )));
        }
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

    /// Whether `entity.key` holds numbers or strings.
    fn kind(&self, entity: Entity, key: &str) -> Kind {
        let numeric = entity == Entity::Metric
            || (entity == Entity::Attribute && self.grammar.numeric_attributes.contains(&key));
        if numeric { Kind::Numeric } else { Kind::Text }
    }

    /// The value of a comparison, checked as MLflow's `_get_value` of this search checks it:
    /// numbers for numeric keys, quoted strings (or a list of them, where the key takes one)
    /// otherwise. A quoted string for a numeric key of a search that takes them
    /// (`version_number = '2'`) is kept as text, read as a number after the comparator check.
    fn value(
        &self,
        kind: Kind,
        entity: Entity,
        key: &str,
        written: &str,
        raw: Raw,
    ) -> Result<Value> {
        let g = self.grammar;
        let d = g.dialect;
        let text = raw.text();
        match (kind, raw) {
            (Kind::Numeric, Raw::One(Token::Number(n, _))) => Ok(Value::Number(n)),
            (Kind::Numeric, Raw::One(Token::Quoted('\'' | '"', s))) if g.quoted_numbers => {
                Ok(Value::Str(s))
            }
            (Kind::Numeric, Raw::List(_)) if d.is_registry() && entity == Entity::Attribute => {
                Err(list_not_supported(g))
            }
            (Kind::Numeric, Raw::One(Token::Word(_) | Token::Quoted('`', _)))
                if d.is_registry() =>
            {
                Err(not_quoted(&text))
            }
            (Kind::Numeric, _) => Err(d.not_numeric(entity, written, &text)),
            (Kind::Text, Raw::One(Token::Quoted('\'' | '"', s))) => Ok(Value::Str(s)),
            (Kind::Text, Raw::One(Token::Word(_) | Token::Quoted('`', _)))
                if d != Dialect::LoggedModels =>
            {
                Err(not_quoted(&text))
            }
            (Kind::Text, Raw::List(items))
                if matches!(entity, Entity::Attribute | Entity::Dataset)
                    || d == Dialect::LoggedModels =>
            {
                if entity == Entity::Attribute && !g.list_attributes.contains(&key) {
                    return Err(list_not_supported(g));
                }
                let mut values = Vec::with_capacity(items.len());
                for item in &items {
                    match item {
                        Token::Quoted('\'' | '"', s) => values.push(s.clone()),
                        _ => {
                            return Err(Error::invalid(format!(
                                "While parsing a list in the query, expected string value, \
                                 punctuation, or whitespace, but got different type in list: {}",
                                list_text(&items)
                            )));
                        }
                    }
                }
                if values.is_empty() {
                    return Err(Error::invalid(
                        "While parsing a list in the query, expected a non-empty list of string \
                         values, but got empty list",
                    ));
                }
                Ok(Value::List(values))
            }
            (Kind::Text, _) if d == Dialect::LoggedModels => Err(Error::invalid(format!(
                "Expected a quoted string value for {} '{key}' (e.g. 'my-value'). Got value {text}",
                entity.name()
            ))),
            (Kind::Text, _) => Err(d.not_a_string(entity, &text)),
        }
    }

    /// A numeric key's value given as a quoted string (`version_number = '2'`).
    fn numeric_text(&self, key: &str, s: &str) -> Result<f64> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid value for numeric attribute '{key}': {}",
                    repr_str(s)
                ))
            })
    }

    /// Refuses a comparator `entity.key` does not take, in this search's words.
    fn check_comparator(
        &self,
        kind: Kind,
        entity: Entity,
        key: &str,
        written: &str,
        comparator: &Comparator,
    ) -> Result<()> {
        let allowed = self.allowed_ops(entity, key);
        let text = match comparator {
            Comparator::Op(op) if allowed.contains(op) => return Ok(()),
            Comparator::Op(op) => op.as_str(),
            Comparator::Unknown(text) => text.as_str(),
        };
        let g = self.grammar;
        if let Some(refused) = g
            .dialect
            .bad_comparator(kind, entity, key, written, text, g)
        {
            return Err(refused);
        }
        // Where MLflow has no words of its own (it crashes, or takes the comparator): the
        // comparators the key takes.
        let mut message = format!(
            "Invalid comparator '{text}' for {} '{key}', not one of '{}'",
            entity.name(),
            op_list(&allowed)
        );
        if entity == Entity::Attribute && matches!(text, "IN" | "NOT IN") {
            message.push_str(&format!(
                ". Only {} attributes support comparison with a list of quoted string values.",
                key_list(g.list_attributes)
            ));
        }
        Err(Error::invalid(message))
    }
}

/// A comparator as written: one this parser knows, or text MLflow's parser also reads as one.
#[derive(Debug, Clone, PartialEq)]
enum Comparator {
    Op(Op),
    Unknown(String),
}

/// Whether a key holds numbers (metrics, numeric attributes) or strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Numeric,
    Text,
}

/// A comparison's value as written.
enum Raw {
    One(Token),
    List(Vec<Token>),
}

impl Raw {
    /// As MLflow quotes the value's SQL token (the list with its items `, `-separated).
    fn text(&self) -> String {
        match self {
            Self::One(t) => t.text(),
            Self::List(items) => {
                let texts: Vec<String> = items.iter().map(Token::text).collect();
                format!("({})", texts.join(", "))
            }
        }
    }
}

/// A list as Python prints the tuple MLflow reads it into (`(1, 2)`, `(1,)`).
fn list_text(items: &[Token]) -> String {
    let texts: Vec<String> = items.iter().map(Token::text).collect();
    if texts.len() == 1 {
        format!("({},)", texts[0])
    } else {
        format!("({})", texts.join(", "))
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Str(s) => format!("'{s}'"),
        Value::List(items) => format!("({})", items.join(", ")),
        Value::None => "NULL".into(),
    }
}

/// MLflow's log-model search refuses any filter that is not comparisons joined by `AND`
/// in these words (with Python's `repr` of the filter).
fn not_a_conjunction(filter: &str) -> Error {
    Error::invalid(format!(
        "Invalid filter string: {}. Expected a list of comparisons separated by 'AND' (e.g. \
         'metrics.loss > 0.1 AND params.lr = 0.01').",
        repr_str(filter)
    ))
}

impl Parser<'_> {
    /// MLflow's first pass: the filter must be comparisons joined by `AND` before any key or
    /// value is looked at. A clause that is no comparison is refused by listing its tokens,
    /// as MLflow lists the SQL tokens it could not group into one (quoted in run searches).
    fn structure(&mut self) -> Result<()> {
        self.structural = true;
        let result = self.shapes();
        self.structural = false;
        self.pos = 0;
        result
    }

    fn shapes(&mut self) -> Result<()> {
        // Like MLflow, every token that makes no comparison is listed, not the first only.
        let mut invalid: Vec<usize> = Vec::new();
        let strays = |p: &mut Self, invalid: &mut Vec<usize>| {
            while let Some(Token::Stray(_)) = p.peek() {
                invalid.push(p.pos);
                p.pos += 1;
            }
        };
        loop {
            strays(self, &mut invalid);
            if self.peek().is_none() {
                break;
            }
            let start = self.pos;
            let shaped = (|| {
                self.identifier()?;
                let comparator = self.operator()?;
                if let Comparator::Op(Op::IsNull | Op::IsNotNull) = comparator {
                    return Ok(());
                }
                // `IN` groups with a parenthesised list only; an unclosed quote is no value.
                match (comparator, self.raw_value()?) {
                    (_, Raw::One(Token::Stray(_))) => Err(self.error("an unclosed quote")),
                    (Comparator::Op(Op::In | Op::NotIn), Raw::One(_)) => {
                        Err(self.error("IN takes a parenthesised list"))
                    }
                    _ => Ok(()),
                }
            })();
            if let Err(e) = shaped {
                if !e.message.starts_with("Invalid clause(s)") {
                    return Err(e);
                }
                // A parenthesised clause is one SQL token MLflow quotes as written, and a
                // leading AND is no clause: the parser's own words stand for those.
                if self.grammar.dialect != Dialect::LoggedModels
                    && matches!(self.tokens.get(start), Some(t) if *t == Token::LParen || t.is_keyword("AND"))
                {
                    return Err(e);
                }
                let end = self.tokens[start..]
                    .iter()
                    .position(|t| t.is_keyword("AND"))
                    .map_or(self.tokens.len(), |i| start + i);
                invalid.extend(start..end);
                self.pos = end;
            } else {
                strays(self, &mut invalid);
            }
            match self.next() {
                Some(t) if t.is_keyword("AND") && self.peek().is_some() => {}
                Some(t) if t.is_keyword("OR") => invalid.push(self.pos - 1),
                _ => break,
            }
        }
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(self.invalid_clauses(&invalid))
        }
    }

    /// Tokens that make no comparison, listed as MLflow lists invalid tokens.
    fn invalid_clauses(&self, indices: &[usize]) -> Error {
        let d = self.grammar.dialect;
        if d == Dialect::LoggedModels {
            return not_a_conjunction(self.input);
        }
        // `entity.key` is one SQL token: the dots join their neighbours.
        let mut texts: Vec<String> = Vec::new();
        let mut joining = false;
        // A list's commas are punctuation, not tokens MLflow lists.
        let tokens = indices.iter().map(|&i| &self.tokens[i]);
        for token in tokens.filter(|t| **t != Token::Comma) {
            let text = token.text();
            match texts.last_mut() {
                Some(last) if joining || *token == Token::Dot => last.push_str(&text),
                _ => texts.push(text),
            }
            joining = *token == Token::Dot;
        }
        let listed: Vec<String> = if d == Dialect::Runs {
            texts.iter().map(|t| format!("'{t}'")).collect()
        } else {
            texts
        };
        Error::invalid(format!(
            "Invalid clause(s) in filter string: {}",
            listed.join(", ")
        ))
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
    let mut parser = Parser::new(filter, grammar).map_err(|e| {
        if grammar.dialect == Dialect::LoggedModels {
            not_a_conjunction(filter)
        } else {
            e
        }
    })?;
    let mut clauses = Vec::new();
    if parser.tokens.is_empty() {
        return Ok(clauses);
    }
    parser.structure()?;
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
    let d = grammar.dialect;
    let unparsable = || {
        Error::invalid(format!(
            "Invalid order_by clause '{clause}'. Could not be parsed."
        ))
    };
    let mut parser = Parser::new(clause, grammar).map_err(|_| unparsable())?;
    // MLflow splits the clause shell-style first: an unclosed quote fails that.
    if parser.tokens.iter().any(|t| matches!(t, Token::Stray(_))) {
        return Err(unparsable());
    }
    // A lone direction is no key (MLflow's SQL parser reads it as a keyword).
    match parser.tokens.first() {
        None => return Err(unparsable()),
        Some(t) if t.is_keyword("ASC") || t.is_keyword("DESC") => return Err(unparsable()),
        Some(_) => {}
    }
    // The key as written, without the direction (the registry's errors quote it).
    let head = match clause.trim().rsplit_once(char::is_whitespace) {
        Some((head, last))
            if last.eq_ignore_ascii_case("ASC") || last.eq_ignore_ascii_case("DESC") =>
        {
            head.trim()
        }
        _ => clause.trim(),
    };
    let prefix = head.split_once('.').map(|(p, _)| p.trim_matches('`'));
    if d == Dialect::EvaluationDatasets
        && let Some(prefix) = prefix.filter(|p| !matches!(*p, "tag" | "tags"))
    {
        return Err(Error::invalid(format!(
            "Invalid identifier token '{prefix}' specified"
        )));
    }
    let identified = parser.identifier().map_err(|e| {
        if e.message.starts_with("Invalid clause(s)") {
            unparsable()
        } else {
            e
        }
    });
    let (entity, key) = match identified {
        Err(_) if d == Dialect::RegisteredModels => {
            return Err(d.invalid_attribute_key(head, true));
        }
        other => other?,
    };
    let ascending = match (parser.next(), parser.next()) {
        (None, _) => true,
        (Some(t), None) if t.is_keyword("ASC") => true,
        (Some(t), None) if t.is_keyword("DESC") => false,
        (Some(Token::Word(_)), None) => {
            return Err(Error::invalid(format!(
                "Invalid ordering key in order_by clause '{clause}'."
            )));
        }
        _ => return Err(unparsable()),
    };
    let key = match entity {
        // The registry's model search takes the key as written, without an entity.
        Entity::Attribute if d == Dialect::RegisteredModels && prefix.is_some() => {
            return Err(d.invalid_attribute_key(head, true));
        }
        Entity::Attribute => parser.attribute(&key, true)?,
        _ if d == Dialect::RegisteredModels => return Err(d.invalid_attribute_key(head, true)),
        e if grammar.order_entities.contains(&e) => key,
        e => {
            return Err(Error::invalid(format!(
                "Invalid order_by entity: {}",
                e.name()
            )));
        }
    };
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
        assert_eq!(
            err("datasets.size = 'x'"),
            "Invalid dataset key 'size' specified. Valid keys are '{'name', 'digest', 'context'}'"
        );
        // MLflow's message lacks the closing quote.
        assert_eq!(
            err("datasets.name > 'a'"),
            "Invalid comparator '>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}"
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
        assert_eq!(
            err("metrics.m IS NULL"),
            "IS NULL / IS NOT NULL is only supported for tags and params, not for 'metric' 'm'"
        );
        assert_eq!(
            err("status IS NOT NULL"),
            "IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' \
             'status'"
        );
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
        assert_eq!(
            err("run_id IN 'a'"),
            "Invalid clause(s) in filter string: 'run_id', 'IN', ''a''"
        );
        assert_eq!(
            err("run_id IN ('a'"),
            "Invalid clause(s) in filter string: 'run_id', 'IN', '(', ''a''"
        );
        err_has("run_id IN ('a' 'b')", &["Invalid clause(s)", "''b''"]);
        // Python's tuple of what MLflow read.
        assert_eq!(
            err("run_id IN ('a', 1)"),
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: ('a', 1)"
        );
        assert_eq!(
            err("run_id IN (`a`)"),
            "While parsing a list in the query, expected string value, punctuation, or \
             whitespace, but got different type in list: (`a`,)"
        );
        assert_eq!(
            err("run_id NOT LIKE 'a'"),
            "Invalid comparator 'NOT LIKE' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'"
        );
    }

    #[test]
    fn in_is_only_for_list_attributes() {
        // MLflow reads the value before the comparator: a list where a string or number
        // belongs is a wrong value.
        assert_eq!(
            err("status IN ('a')"),
            "Only ['run_id'] attributes support comparison with a list of quoted string values."
        );
        assert_eq!(
            err("params.p IN ('a')"),
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value ('a')"
        );
        assert_eq!(
            err("tags.t NOT IN ('a')"),
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value ('a')"
        );
        assert_eq!(
            err("metrics.m IN (1)"),
            "Expected numeric value type for metric. Found (1)"
        );
        assert_eq!(
            err("run_id = ('a', 'b')"),
            "Expected a quoted string value for attributes. Got value ('a', 'b')"
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
        assert_eq!(
            err("metrics.m = 'abc'"),
            "Expected numeric value type for metric. Found 'abc'"
        );
        assert_eq!(
            err("metrics.m = '1'"),
            "Expected numeric value type for metric. Found '1'"
        );
        assert_eq!(
            err("metrics.m > inf"),
            "Expected numeric value type for metric. Found inf"
        );
        // The value is checked before the comparator, as MLflow does.
        assert_eq!(
            err("metrics.m LIKE '1'"),
            "Expected numeric value type for metric. Found '1'"
        );
        assert_eq!(
            err("end_time = 'x'"),
            "Expected numeric value type for numeric attribute: end_time. Found 'x'"
        );
        assert_eq!(
            err("created > 'x'"),
            "Expected numeric value type for numeric attribute: created. Found 'x'"
        );
        assert_eq!(
            err("params.p = 5"),
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 5"
        );
        for (filter, word) in [
            ("tags.t = x", "x"),
            ("tags.t = `x`", "`x`"),
            ("status = RUNNING", "RUNNING"),
        ] {
            assert_eq!(
                err(filter),
                format!(
                    "Parameter value is either not quoted or unidentified quote types used for \
                     string value {word}. Use either single or double quotes."
                )
            );
        }
        assert_eq!(
            err("status = 1"),
            "Expected a quoted string value for attributes. Got value 1"
        );
        assert_eq!(
            err("datasets.name = 1"),
            "Expected a quoted string value for dataset attributes. Got value 1"
        );
        assert_eq!(
            err("attributes.unknown = 'a'"),
            "Invalid attribute key 'unknown' specified. Valid keys are '{'run_id', 'run_name', \
             'status', 'user_id', 'artifact_uri', 'start_time', 'end_time', 'created', 'Created', \
             'run name', 'Run name', 'Run Name'}'"
        );
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
        // MLflow's run search takes an empty key (`metrics.`), which nothing has.
        assert_eq!(one("tags. = 'x'"), cmp(Entity::Tag, "", Op::Eq, s("x")));
        assert_eq!(one("tags.`` = 'x'"), cmp(Entity::Tag, "", Op::Eq, s("x")));
        let e = parse_experiment_filter("tags.`` = 'x'").unwrap_err();
        assert!(e.message.contains("empty tag key"), "{}", e.message);
        err_has("tags.`a`.b = 'x'", &["quote the whole key"]);
        err_has(".a = 'x'", &["unexpected character '.'"]);
        assert_eq!(
            err("= 'x'"),
            "Invalid clause(s) in filter string: '=', ''x''"
        );
        assert_eq!(
            err("1 = 1"),
            "Invalid clause(s) in filter string: '1', '=', '1'"
        );
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
        // Clauses that are no comparison: their tokens, as MLflow lists them.
        assert_eq!(
            err("metrics.acc >"),
            "Invalid clause(s) in filter string: 'metrics.acc', '>'"
        );
        assert_eq!(
            err("metrics.acc"),
            "Invalid clause(s) in filter string: 'metrics.acc'"
        );
        assert_eq!(
            err("metrics.acc 1"),
            "Invalid clause(s) in filter string: 'metrics.acc', '1'"
        );
        assert_eq!(
            err("metrics.a > 1 OR metrics.b > 2"),
            "Invalid clause(s) in filter string: 'OR'"
        );
        assert_eq!(
            err("metrics.a > 1 or metrics.b > 2"),
            "Invalid clause(s) in filter string: 'or'"
        );
        assert_eq!(
            err("tags.t IS 'x'"),
            "Invalid clause(s) in filter string: 'tags.t', 'IS', ''x''"
        );
        // Comparators MLflow reads but refuses, in the words for the key's kind.
        assert_eq!(
            err("params.a <> 'x'"),
            "Invalid comparator '<>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}'"
        );
        assert_eq!(
            err("status == 'x'"),
            "Invalid comparator '==' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'"
        );
        assert_eq!(
            err("metrics.a <> 1"),
            "Invalid comparator '<>' not one of '{'>', '>=', '!=', '=', '<', '<='}"
        );
        err_has("metrics.a ~ 1", &["unexpected character '~'"]);
        // An unclosed quote is a token of its own; the rest is read on, as MLflow's lexer does.
        assert_eq!(
            err("params.x = 'unterminated"),
            "Invalid clause(s) in filter string: 'params.x', '=', ''', 'unterminated'"
        );
        assert_eq!(
            err("params.x = a'"),
            "Invalid clause(s) in filter string: '''"
        );
        assert_eq!(
            err("`params.x = 'a'"),
            "Invalid clause(s) in filter string: '`'"
        );
        assert_eq!(
            parse_experiment_filter("name = \"a").unwrap_err().message,
            "Invalid clause(s) in filter string: name, =, \", a"
        );
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
        for clause in [
            "",
            "   ",
            "metrics.acc DESC extra",
            "metrics.acc, params.b",
            "tags.`x",
            "ASC",
        ] {
            assert_eq!(
                order_err(clause),
                format!("Invalid order_by clause '{clause}'. Could not be parsed.")
            );
        }
        assert_eq!(
            order_err("metrics.acc sideways"),
            "Invalid ordering key in order_by clause 'metrics.acc sideways'."
        );
        let m = order_err("attributes.nope");
        assert!(
            m.starts_with("Invalid attribute key 'nope' specified. Valid keys are '{"),
            "{m}"
        );
        let m = order_err("foo.bar");
        assert!(m.contains("Invalid entity type 'foo'"), "{m}");
        assert_eq!(
            order_err("datasets.name"),
            "Invalid order_by entity: dataset"
        );
        let m = order_err("experiment_id");
        assert!(m.contains("Invalid attribute key 'experiment_id'"), "{m}");
        let m = order_err("lifecycle_stage");
        assert!(m.contains("Invalid attribute key 'lifecycle_stage'"), "{m}");
        // MLflow orders by an empty metric key (which no run has).
        assert_eq!(order("metrics."), (Entity::Metric, String::new(), true));
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
    fn registry_and_other_searches_word_errors_as_mlflow() {
        let rm = |f: &str| parse_registered_model_filter(f).unwrap_err().message;
        let mv = |f: &str| parse_model_version_filter(f).unwrap_err().message;
        let lm = |f: &str| parse_logged_model_filter(f).unwrap_err().message;
        let ds = |f: &str| parse_evaluation_dataset_filter(f).unwrap_err().message;
        assert_eq!(
            rm("version_number = 1"),
            "Invalid attribute key 'version_number' specified. Valid keys are '{'name'}'"
        );
        assert_eq!(rm("name > 'a'"), "Invalid comparator for attribute: >");
        assert_eq!(rm("name == 'a'"), "Invalid comparator for attribute: ==");
        assert_eq!(rm("tags.t > 'a'"), "Invalid comparator for tag: >");
        assert_eq!(
            rm("name = 1"),
            "Expected a quoted string value or a list of quoted string values for attributes. \
             Got value 1"
        );
        assert_eq!(
            rm("metrics.m > 1"),
            "Invalid entity type 'metrics'. Valid entity types are ('attribute', 'tag', 'tags')"
        );
        // Not a list of tokens as the run search quotes them.
        assert_eq!(rm("name = "), "Invalid clause(s) in filter string: name, =");
        assert_eq!(
            mv("name = 1"),
            "Only the '{'version_number', 'creation_timestamp', 'last_updated_timestamp'}' \
             attributes support comparison with numeric values."
        );
        assert_eq!(
            mv("version_number = 'a'"),
            "Invalid value for numeric attribute 'version_number': 'a'"
        );
        assert_eq!(
            mv("version_number LIKE '1'"),
            "Invalid comparator for attribute version_number: LIKE"
        );
        assert_eq!(
            mv("version_number IN ('a')"),
            "Only ['name', 'run_id'] attributes support comparison with a list of quoted string \
             values."
        );
        assert_eq!(mv("run_id > 'a'"), "Invalid comparator for attribute: >");
        assert_eq!(
            lm("name > 'a'"),
            "Invalid comparison operator for attributes.name: '>'. Expected one of ('=', '!=', \
             'LIKE', 'ILIKE', 'IN', 'NOT IN')."
        );
        assert_eq!(
            lm("last_updated_timestamp LIKE '1'"),
            "Invalid comparison operator for attributes.last_updated_timestamp_ms: 'LIKE'. \
             Expected one of ('<', '<=', '>', '>=', '=', '!=')."
        );
        assert_eq!(
            lm("datasets.name = 'a'"),
            "Invalid entity type: 'datasets'. Expected one of ['attributes', 'metrics', 'params', \
             'tags']."
        );
        assert_eq!(
            lm("name = 'a' OR name = 'b'"),
            "Invalid filter string: \"name = 'a' OR name = 'b'\". Expected a list of comparisons \
             separated by 'AND' (e.g. 'metrics.loss > 0.1 AND params.lr = 0.01')."
        );
        assert_eq!(
            ds("digest > 'a'"),
            "Invalid attribute key 'digest' specified. Valid keys are: {'name', 'created_time', \
             'last_update_time', 'created_by', 'last_updated_by'}"
        );
        let rm_order = |o: &str| parse_registered_model_order_by(o).unwrap_err().message;
        for key in ["creation_timestamp", "attribute.name", "metrics."] {
            assert_eq!(
                rm_order(key),
                format!(
                    "Invalid order by key '{key}' specified. Valid keys are '{{'name', 'timestamp'}}'"
                )
            );
        }
        assert_eq!(
            parse_evaluation_dataset_order_by("metrics.m")
                .unwrap_err()
                .message,
            "Invalid identifier token 'metrics' specified"
        );
        assert_eq!(
            parse_experiment_order_by("tags.t").unwrap_err().message,
            "Invalid order_by entity: tag"
        );
    }

    #[test]
    fn malformed_experiment_filters() {
        let entities = "Valid entity types are ('attribute', 'tag', 'tags')";
        for (filter, prefix) in [
            ("metrics.a > 1", "metrics"),
            ("params.p = 'x'", "params"),
            ("datasets.name = 'x'", "datasets"),
            ("attributes.name = 'x'", "attributes"),
        ] {
            assert_eq!(
                exp_err(filter),
                format!("Invalid entity type '{prefix}'. {entities}")
            );
        }
        for key in ["status", "lifecycle_stage", "artifact_location"] {
            assert_eq!(
                exp_err(&format!("attribute.{key} = 'x'")),
                format!(
                    "Invalid attribute key '{key}' specified. Valid keys are '{{'name', \
                     'experiment_id', 'creation_time', 'last_update_time'}}'"
                )
            );
        }
        assert_eq!(
            exp_err("name > 'x'"),
            "Invalid comparator '>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'"
        );
        assert_eq!(
            exp_err("name IN ('a')"),
            "Only ['experiment_id'] attributes support comparison with a list of quoted string \
             values."
        );
        assert_eq!(
            exp_err("name IS NULL"),
            "IS NULL / IS NOT NULL is only supported for tags, not for attribute 'name'"
        );
        assert_eq!(
            exp_err("creation_time LIKE 5"),
            "Invalid comparator 'LIKE' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}"
        );
        assert_eq!(
            exp_err("creation_time > '5'"),
            "Expected numeric value type for numeric attribute: creation_time. Found '5'"
        );
        assert_eq!(
            exp_err("creation_time > 5.5"),
            "Invalid value for numeric attribute 'creation_time': '5.5'"
        );
        assert_eq!(
            exp_err("experiment_id > '1'"),
            "Invalid comparator for experiment_id: >"
        );
        assert_eq!(
            exp_err("experiment_id LIKE '1'"),
            "Invalid comparator for experiment_id: LIKE"
        );
        assert_eq!(
            exp_err("experiment_id = 1"),
            "Expected a quoted string value for attributes. Got value 1"
        );
        assert!(exp_err("experiment_id = 'abc'").contains("Invalid experiment ID 'abc'"));
        assert!(exp_err("experiment_id IN ('1', 'x')").contains("Invalid experiment ID 'x'"));
        assert_eq!(exp_err("tags.t > 'x'"), "Invalid comparator for tag: >");
        assert_eq!(
            exp_err("tags.t IN ('x')"),
            "Expected a quoted string value for tag (e.g. 'my-value'). Got value ('x')"
        );
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
