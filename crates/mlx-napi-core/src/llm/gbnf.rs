//! GBNF (llama.cpp's grammar format, what node-llama-cpp and the
//! whisper.cpp/llama.cpp bindings take) translated into llguidance's Lark
//! dialect, which `constraint.rs` compiles.
//!
//! GBNF: `name ::= alternatives` rules, `root` the start; string literals
//! with `\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH` escapes; character classes
//! `[a-z]`, `[^"\\]`; `.` any character; groups; `* + ? {m} {m,} {m,n}`;
//! `#` comments; a rule ends at the end of its line unless inside a group
//! or right after `::=` or `|`.
//!
//! The translation keeps the grammar's structure. As in llguidance's own
//! `gbnf_to_lark.py`, a rule built only from characters (no recursion, no
//! reference to such a rule) becomes a Lark terminal: one lexeme, matched as
//! a regular expression, which is what keeps character-level GBNF (a JSON
//! string, a number) fast there. A lexeme is matched greedily, so a grammar
//! whose meaning depends on where one such rule stops and the next begins
//! (`word ::= [a-z]+` followed by another letter rule) can accept less than
//! llama.cpp would. llama.cpp's token references (`<[id]>`, `<|name|>`) are
//! not supported.

use std::collections::{HashMap, HashSet};

/// An expression of a rule's body.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Literal(String),
    /// `[...]`: inclusive ranges, `negated` for `[^...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `.`
    Any,
    Rule(String),
    Group(Vec<Vec<Node>>),
    Repeat {
        node: Box<Node>,
        min: u32,
        max: Option<u32>,
    },
}

struct Rule {
    name: String,
    body: Vec<Vec<Node>>,
}

/// Most repetitions a `{m,n}` may name (llguidance expands them).
const MAX_REPEAT: u32 = 100_000;

/// Whether `source` reads as GBNF rather than Lark: some line defines a rule
/// with `::=`, which Lark has no use for.
pub(crate) fn looks_like_gbnf(source: &str) -> bool {
    source.lines().any(|line| {
        let line = line.trim_start();
        let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
        name_end > 0 && line[name_end..].trim_start().starts_with("::=")
    })
}

/// `source` (GBNF) as an llguidance Lark grammar, or a message saying where
/// and why it does not parse.
pub(crate) fn to_lark(source: &str) -> Result<String, String> {
    let rules = Parser::new(source).grammar()?;
    emit(&rules)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, s: &str) -> bool {
        if self.text[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    /// `message` at the current line and column.
    fn error(&self, message: impl std::fmt::Display) -> String {
        let before = &self.text[..self.pos];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("GBNF line {line}, column {column}: {message}")
    }

    /// Blanks and `#` comments; newlines too when `newlines`.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => {
                    self.bump();
                }
                '\r' | '\n' if newlines => {
                    self.bump();
                }
                '#' => {
                    while !matches!(self.peek(), None | Some('\n')) {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn grammar(&mut self) -> Result<Vec<Rule>, String> {
        let mut rules: Vec<Rule> = Vec::new();
        loop {
            self.space(true);
            if self.peek().is_none() {
                break;
            }
            let name = self.name()?;
            if rules.iter().any(|r| r.name == name) {
                return Err(self.error(format!("rule '{name}' is defined twice")));
            }
            self.space(false);
            if !self.eat("::=") {
                return Err(self.error(format!("expected '::=' after the rule name '{name}'")));
            }
            self.space(true);
            let body = self.alternatives(false)?;
            self.space(false);
            match self.peek() {
                None | Some('\n' | '\r') => {}
                Some(c) if is_name_char(c) => {} // the next rule (see `sequence`)
                Some(c) => return Err(self.error(format!("unexpected '{c}'"))),
            }
            rules.push(Rule { name, body });
        }
        if !rules.iter().any(|r| r.name == "root") {
            return Err("a GBNF grammar needs a 'root' rule (where the output starts)".into());
        }
        let defined: HashSet<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        for rule in &rules {
            let mut used = Vec::new();
            references(&rule.body, &mut used);
            if let Some(missing) = used.iter().find(|u| !defined.contains(u.as_str())) {
                return Err(format!(
                    "GBNF rule '{}' uses '{missing}', which is not defined",
                    rule.name
                ));
            }
        }
        Ok(rules)
    }

    fn name(&mut self) -> Result<String, String> {
        let start = self.pos;
        while self.peek().is_some_and(is_name_char) {
            self.bump();
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some(c) => self.error(format!("expected a rule name, found '{c}'")),
                None => self.error("expected a rule name"),
            });
        }
        Ok(self.text[start..self.pos].to_string())
    }

    /// `seq | seq | ...`; `nested`: inside a group, where newlines are
    /// blanks. A line that starts with `|` goes on with the rule above it
    /// (llama.cpp wants the `|` at the end of the line instead).
    fn alternatives(&mut self, nested: bool) -> Result<Vec<Vec<Node>>, String> {
        let mut alternatives = vec![self.sequence(nested)?];
        loop {
            let line_end = self.pos;
            self.space(true);
            if !self.eat("|") {
                self.pos = line_end;
                break;
            }
            self.space(true);
            alternatives.push(self.sequence(nested)?);
        }
        Ok(alternatives)
    }

    /// Whether a rule's `::=` follows (after blanks), leaving the position.
    fn at_definition(&mut self) -> bool {
        let at = self.pos;
        self.space(false);
        let found = self.text[self.pos..].starts_with("::=");
        self.pos = at;
        found
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Node>, String> {
        let mut nodes: Vec<Node> = Vec::new();
        loop {
            let node = match self.peek() {
                Some('"') => {
                    self.bump();
                    self.literal()?
                }
                Some('[') => {
                    self.bump();
                    self.class()?
                }
                Some('.') => {
                    self.bump();
                    Node::Any
                }
                Some('(') => {
                    self.bump();
                    self.space(true);
                    let inner = self.alternatives(true)?;
                    self.space(true);
                    if !self.eat(")") {
                        return Err(self.error("expected ')'"));
                    }
                    Node::Group(inner)
                }
                Some('<') => {
                    return Err(self.error("token references (<...>) are not supported"));
                }
                Some(c) if is_name_char(c) => {
                    let start = self.pos;
                    let name = self.name()?;
                    if self.at_definition() {
                        // The next rule's name: this rule has ended (a
                        // `::=` or `|` that ended its line left its last
                        // alternative empty).
                        self.pos = start;
                        break;
                    }
                    Node::Rule(name)
                }
                Some('*' | '+' | '?' | '{') => {
                    let Some(last) = nodes.pop() else {
                        return Err(self.error("a repetition needs something to repeat"));
                    };
                    self.repetition(last)?
                }
                _ => break,
            };
            nodes.push(node);
            self.space(nested);
        }
        Ok(nodes)
    }

    fn repetition(&mut self, node: Node) -> Result<Node, String> {
        let (min, max) = match self.bump() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            _ => {
                self.space(false);
                let min = self.number()?;
                self.space(false);
                let max = if self.eat(",") {
                    self.space(false);
                    if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        Some(self.number()?)
                    } else {
                        None
                    }
                } else {
                    Some(min)
                };
                self.space(false);
                if !self.eat("}") {
                    return Err(self.error("expected '}' to close the repetition"));
                }
                if max.is_some_and(|max| max < min) {
                    return Err(self.error(format!(
                        "repetition {{{min},{}}}: the most is less than the least",
                        max.unwrap_or(0)
                    )));
                }
                (min, max)
            }
        };
        Ok(Node::Repeat {
            node: Box::new(node),
            min,
            max,
        })
    }

    fn number(&mut self) -> Result<u32, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let digits = &self.text[start..self.pos];
        if digits.is_empty() {
            return Err(self.error("expected a repetition count"));
        }
        match digits.parse::<u32>() {
            Ok(n) if n <= MAX_REPEAT => Ok(n),
            _ => Err(self.error(format!(
                "repetition count {digits} is more than {MAX_REPEAT}"
            ))),
        }
    }

    /// After the opening quote.
    fn literal(&mut self) -> Result<Node, String> {
        let mut value = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error("unterminated string literal")),
                Some('"') => {
                    self.bump();
                    return Ok(Node::Literal(value));
                }
                Some(_) => value.push(self.char()?),
            }
        }
    }

    /// After the opening bracket.
    fn class(&mut self) -> Result<Node, String> {
        let negated = self.eat("^");
        let mut ranges = Vec::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error("unterminated character class")),
                Some(']') => {
                    self.bump();
                    break;
                }
                Some(_) => {
                    let first = self.char()?;
                    let last = if self.peek() == Some('-')
                        && !self.text[self.pos + 1..].starts_with(']')
                    {
                        self.bump();
                        self.char()?
                    } else {
                        first
                    };
                    if last < first {
                        return Err(self
                            .error(format!("character range {first:?}-{last:?} runs backwards")));
                    }
                    ranges.push((first, last));
                }
            }
        }
        Ok(Node::Class { negated, ranges })
    }

    /// One character of a literal or class, escapes resolved.
    fn char(&mut self) -> Result<char, String> {
        let Some(c) = self.bump() else {
            return Err(self.error("unexpected end of the grammar"));
        };
        if c != '\\' {
            return Ok(c);
        }
        let hex = |p: &mut Self, digits: usize| -> Result<char, String> {
            let text = p.text[p.pos..].get(..digits).unwrap_or("");
            let code = (text.len() == digits)
                .then(|| u32::from_str_radix(text, 16).ok())
                .flatten()
                .ok_or_else(|| p.error(format!("expected {digits} hex digits after the escape")))?;
            p.pos += digits;
            char::from_u32(code).ok_or_else(|| p.error(format!("U+{code:X} is not a character")))
        };
        match self.bump() {
            Some('n') => Ok('\n'),
            Some('r') => Ok('\r'),
            Some('t') => Ok('\t'),
            Some('x') => hex(self, 2),
            Some('u') => hex(self, 4),
            Some('U') => hex(self, 8),
            Some(c @ ('\\' | '"' | '[' | ']' | '-' | '^')) => Ok(c),
            Some(c) => Err(self.error(format!("unknown escape '\\{c}'"))),
            None => Err(self.error("unexpected end of the grammar")),
        }
    }
}

fn references(alternatives: &[Vec<Node>], out: &mut Vec<String>) {
    for node in alternatives.iter().flatten() {
        reference(node, out);
    }
}

fn reference(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::Rule(name) => out.push(name.clone()),
        Node::Group(inner) => references(inner, out),
        Node::Repeat { node, .. } => reference(node, out),
        Node::Literal(_) | Node::Class { .. } | Node::Any => {}
    }
}

/// The Lark text: root's translation first (as `start`), then every rule,
/// as a terminal (uppercase) where it is built only from characters.
fn emit(rules: &[Rule]) -> Result<String, String> {
    let uses: HashMap<&str, Vec<String>> = rules
        .iter()
        .map(|r| {
            let mut used = Vec::new();
            references(&r.body, &mut used);
            (r.name.as_str(), used)
        })
        .collect();
    // Terminal rules, to a fixed point: every rule they use is terminal (so
    // none is recursive). A terminal root is one lexeme for the whole output.
    let mut terminal: HashSet<&str> = HashSet::new();
    loop {
        let before = terminal.len();
        for rule in rules {
            if !terminal.contains(rule.name.as_str())
                && uses[rule.name.as_str()]
                    .iter()
                    .all(|u| terminal.contains(u.as_str()))
            {
                terminal.insert(rule.name.as_str());
            }
        }
        if terminal.len() == before {
            break;
        }
    }
    // Lark names: rules start with a lowercase letter, terminals are
    // uppercase; root is `start`, or `ROOT` under `start: ROOT`.
    let root_is_terminal = terminal.contains("root");
    let mut names: HashMap<&str, String> = HashMap::new();
    let mut taken: HashSet<String> = HashSet::from(["start".to_string(), "root".to_string()]);
    for rule in rules {
        let name = if rule.name == "root" {
            if root_is_terminal { "ROOT" } else { "start" }.to_string()
        } else {
            let mut base = rule.name.replace('_', "-").to_ascii_lowercase();
            if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
                base = format!("r-{base}");
            }
            let mut name = base.clone();
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            taken.insert(name.clone());
            if terminal.contains(rule.name.as_str()) {
                name.to_ascii_uppercase()
            } else {
                name
            }
        };
        names.insert(rule.name.as_str(), name);
    }
    let mut out = String::from(if root_is_terminal {
        "start: ROOT\n"
    } else {
        ""
    });
    for rule in rules
        .iter()
        .filter(|r| r.name == "root")
        .chain(rules.iter().filter(|r| r.name != "root"))
    {
        out.push_str(&names[rule.name.as_str()]);
        out.push_str(": ");
        out.push_str(&alternatives(&rule.body, &names, true));
        out.push('\n');
    }
    Ok(out)
}

fn alternatives(alts: &[Vec<Node>], names: &HashMap<&str, String>, top: bool) -> String {
    let text: Vec<String> = alts.iter().map(|seq| sequence(seq, names)).collect();
    if top {
        text.join("\n    | ")
    } else {
        text.join(" | ")
    }
}

fn sequence(seq: &[Node], names: &HashMap<&str, String>) -> String {
    if seq.is_empty() {
        return "\"\"".into();
    }
    seq.iter()
        .map(|n| node(n, names))
        .collect::<Vec<_>>()
        .join(" ")
}

fn node(n: &Node, names: &HashMap<&str, String>) -> String {
    match n {
        // JSON string syntax, which llguidance's Lark strings use; it has
        // no raw DEL either.
        Node::Literal(value) => serde_json::to_string(value)
            .expect("a string serializes")
            .replace('\u{7f}', "\\u007f"),
        Node::Class { negated, ranges } => {
            let mut rx = String::from(if *negated { "/[^" } else { "/[" });
            for &(first, last) in ranges {
                rx.push_str(&class_char(first));
                if last != first {
                    rx.push('-');
                    rx.push_str(&class_char(last));
                }
            }
            rx.push_str("]/");
            rx
        }
        Node::Any => "/(?s:.)/".into(),
        Node::Rule(name) => names[name.as_str()].clone(),
        Node::Group(inner) => format!("({})", alternatives(inner, names, false)),
        Node::Repeat {
            node: inner,
            min,
            max,
        } => {
            let inner_text = node(inner, names);
            let inner_text = match inner.as_ref() {
                Node::Group(_)
                | Node::Literal(_)
                | Node::Class { .. }
                | Node::Any
                | Node::Rule(_) => inner_text,
                Node::Repeat { .. } => format!("({inner_text})"),
            };
            let op = match (min, max) {
                (0, None) => "*".to_string(),
                (1, None) => "+".to_string(),
                (0, Some(1)) => "?".to_string(),
                (m, None) => format!("{{{m},}}"),
                (m, Some(x)) if m == x => format!("{{{m}}}"),
                (m, Some(x)) => format!("{{{m},{x}}}"),
            };
            format!("{inner_text}{op}")
        }
    }
}

/// A character inside a regex class: letters, digits and blanks as they are,
/// anything else as a `\x{..}` escape (never special, whatever the class
/// syntax makes of `-`, `]`, `^`, `\`, `/` or `&`).
fn class_char(c: char) -> String {
    if c.is_ascii_alphanumeric() || c == ' ' {
        c.to_string()
    } else {
        format!("\\x{{{:X}}}", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::{looks_like_gbnf, to_lark};

    #[test]
    fn rules_literals_classes_and_repetitions_translate() {
        let lark = to_lark(
            r#"
# a comment
root ::= greeting " " name ("!" | "?")* # trailing comment
greeting ::= "hi" | "h\u00e9llo\n"
name ::= [A-Z] [a-z\-]{1,8} [^"\\\]]?
"#,
        )
        .unwrap();
        assert_eq!(
            lark,
            "start: ROOT\n\
             ROOT: GREETING \" \" NAME (\"!\" | \"?\")*\n\
             GREETING: \"hi\"\n    | \"héllo\\n\"\n\
             NAME: /[A-Z]/ /[a-z\\x{2D}]/{1,8} /[^\\x{22}\\x{5C}\\x{5D}]/?\n"
        );
    }

    #[test]
    fn recursive_rules_stay_rules_and_names_are_made_lark_names() {
        let lark = to_lark(
            "root ::= list\nlist ::= \"[\" (item (\",\" item)*)? \"]\"\nitem ::= list | Num_2\nNum_2 ::= [0-9]+ | \n",
        )
        .unwrap();
        assert_eq!(
            lark,
            "start: list\n\
             list: \"[\" (item (\",\" item)*)? \"]\"\n\
             item: list\n    | NUM-2\n\
             NUM-2: /[0-9]/+\n    | \"\"\n"
        );
    }

    #[test]
    fn groups_span_lines_and_rules_end_at_theirs() {
        let lark =
            to_lark("root ::=\n  \"a\" (\n    \"b\"\n  | \"c\"\n  ) x\nx ::= \"d\"{2,}\n").unwrap();
        assert_eq!(
            lark,
            "start: ROOT\nROOT: \"a\" (\"b\" | \"c\") X\nX: \"d\"{2,}\n"
        );
        // `|` opening a line continues the rule; an empty last alternative
        // before the next rule; DEL escaped.
        let lark = to_lark("root ::= \"a\"\n     | b\nb ::= \"\\x7F\" |\nc ::= \"c\"").unwrap();
        assert_eq!(
            lark,
            "start: ROOT\nROOT: \"a\"\n    | B\nB: \"\\u007f\"\n    | \"\"\nC: \"c\"\n"
        );
    }

    #[test]
    fn bad_grammars_say_where() {
        for (source, wanted) in [
            ("rot ::= \"a\"", "needs a 'root' rule"),
            ("root ::= \"a\" b", "'b', which is not defined"),
            (
                "root ::= \"a",
                "line 1, column 12: unterminated string literal",
            ),
            ("root ::= [b-a]", "runs backwards"),
            ("root ::= \"a\"{3,1}", "less than the least"),
            ("root ::= \"a\"\nroot ::= \"b\"", "defined twice"),
            ("root ::= \"a\" )", "unexpected ')'"),
            ("root = \"a\"", "expected '::='"),
            ("root ::= \"\\q\"", "unknown escape"),
            ("root ::= <|eot|>", "token references"),
            ("root ::= * \"a\"", "needs something to repeat"),
            ("root ::= (\"a\"", "expected ')'"),
            ("root ::= \"a\"{1000000}", "more than"),
        ] {
            let err = to_lark(source).unwrap_err();
            assert!(err.contains(wanted), "{source:?}: {err}");
        }
    }

    #[test]
    fn gbnf_is_told_from_lark_by_its_rule_arrows() {
        assert!(looks_like_gbnf("root ::= \"a\""));
        assert!(looks_like_gbnf("# c\n  my-rule ::= x\n"));
        assert!(!looks_like_gbnf("start: \"a\" | \"b\""));
        assert!(!looks_like_gbnf("start: \"::=\""));
    }
}
