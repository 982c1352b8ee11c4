//! Tool calling: the tools a request offers (OpenAI function format), the
//! choice it makes (`auto` / `none` / `required` / one named function), and
//! the model's tool calls parsed out of its text.
//!
//! Models write calls in their own formats; [`parse_tool_calls`] knows:
//! - Qwen2.5 / Qwen3 / Hermes: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`
//!   (one block per call);
//! - Llama 3.1+: `<|python_tag|>{"name": …, "parameters": {…}}` or that JSON
//!   object alone as the whole reply (several separated by `;`);
//! - Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`, and the newer
//!   `[TOOL_CALLS]name[ARGS]{…}`;
//! - a generic fallback: the whole reply (or a ```json fence) is one call
//!   object or an array of them — what a constrained call
//!   ([`ToolChoice::Required`] / [`ToolChoice::Function`]) produces.
//!
//! A call names one of the offered tools and has a JSON object of
//! arguments; text that does not parse that way stays content.

use serde_json::{json, Map, Value};

use super::constraint::ConstraintSpec;
use crate::{Error, Result};

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the arguments (an object schema; `{}`-like when absent).
    pub parameters: Value,
}

impl Tool {
    /// An OpenAI-format tool: `{ type: 'function', function: { name,
    /// description?, parameters? } }`.
    pub fn from_openai(value: &Value, index: usize) -> Result<Self> {
        let bad = |why: &str| Error::invalid(format!("tools[{index}]: {why}"));
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("function");
        if kind != "function" {
            return Err(bad(&format!("type must be 'function', got '{kind}'")));
        }
        let function = value
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("needs a function object"))?;
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("function.name must be a non-empty string"))?;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(bad(
                "function.name may hold only letters, digits, '_', '-' and '.'",
            ));
        }
        let parameters = match function.get("parameters") {
            None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => return Err(bad("function.parameters must be a JSON schema object")),
        };
        Ok(Tool {
            name: name.to_string(),
            description: function
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            parameters,
        })
    }

    /// The OpenAI form again (for chat templates).
    pub fn to_openai(&self) -> Value {
        let mut function = Map::new();
        function.insert("name".into(), self.name.clone().into());
        if let Some(d) = &self.description {
            function.insert("description".into(), d.clone().into());
        }
        function.insert("parameters".into(), self.parameters.clone());
        json!({ "type": "function", "function": function })
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ToolChoice {
    /// The model decides (default).
    #[default]
    Auto,
    /// No call: the tools are not shown and the reply is plain text.
    None,
    /// The reply is a call of one of the tools (constrained).
    Required,
    /// The reply is a call of this tool (constrained).
    Function(String),
}

impl ToolChoice {
    /// `'auto' | 'none' | 'required'`, or `{ type: 'function', function: { name } }`.
    pub fn from_openai(value: &Value) -> Result<Self> {
        match value {
            Value::String(s) => match s.as_str() {
                "auto" => Ok(ToolChoice::Auto),
                "none" => Ok(ToolChoice::None),
                "required" => Ok(ToolChoice::Required),
                other => Err(Error::invalid(format!(
                    "toolChoice must be 'auto', 'none', 'required' or {{ type: 'function', function: {{ name }} }}, got '{other}'"
                ))),
            },
            Value::Object(o) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .map(|n| ToolChoice::Function(n.to_string()))
                .ok_or_else(|| Error::invalid("toolChoice.function.name must be a string")),
            _ => Err(Error::invalid("toolChoice must be a string or an object")),
        }
    }
}

/// Checks `tools` and `choice` together; for a forced call, the constraint
/// that makes the reply one call object `{"name": …, "arguments": {…}}`
/// whose arguments follow the tool's parameter schema.
pub fn forced_call_constraint(
    tools: &[Tool],
    choice: &ToolChoice,
) -> Result<Option<ConstraintSpec>> {
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = tools.iter().find(|t| !seen.insert(t.name.as_str())) {
        return Err(Error::invalid(format!(
            "two tools are named '{}'",
            dup.name
        )));
    }
    let offered: Vec<&Tool> = match choice {
        ToolChoice::Auto | ToolChoice::None => return Ok(None),
        ToolChoice::Required if tools.is_empty() => {
            return Err(Error::invalid(
                "toolChoice 'required' needs at least one tool",
            ))
        }
        ToolChoice::Required => tools.iter().collect(),
        ToolChoice::Function(name) => {
            vec![tools.iter().find(|t| &t.name == name).ok_or_else(|| {
                Error::invalid(format!(
                    "toolChoice names '{name}', which is not among the tools"
                ))
            })?]
        }
    };
    let one = |t: &Tool| {
        json!({
            "type": "object",
            "properties": { "name": { "const": t.name }, "arguments": t.parameters },
            "required": ["name", "arguments"],
            "additionalProperties": false
        })
    };
    let schema = match offered.as_slice() {
        [t] => one(t),
        many => json!({ "anyOf": many.iter().map(|t| one(t)).collect::<Vec<_>>() }),
    };
    Ok(Some(ConstraintSpec::JsonSchema(schema)))
}

/// A parsed call: the tool's name and its arguments as JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// `call_<n>`, unique within the reply (OpenAI's `tool_call_id`).
    pub id: String,
    pub name: String,
    /// A JSON object, serialized.
    pub arguments: String,
}

impl ToolCall {
    /// `{ id, type: 'function', function: { name, arguments } }`.
    pub fn to_openai(&self) -> Value {
        json!({
            "id": self.id,
            "type": "function",
            "function": { "name": self.name, "arguments": self.arguments }
        })
    }
}

/// The model's reply split into text content and tool calls. Calls of
/// tools that were not offered are left in the content.
pub fn parse_tool_calls(text: &str, tools: &[Tool]) -> (String, Vec<ToolCall>) {
    // A value that is a call of an offered tool → (name, arguments).
    let call = |value: &Value| -> Option<(String, String)> {
        call_parts(value)
            .filter(|(name, _)| tools.iter().any(|t| t.name == *name))
            .map(|(name, args)| (name.to_string(), args))
    };
    // All of them calls, or none taken: a reply is not half parsed.
    let all = |items: &[Value]| -> Option<Vec<(String, String)>> {
        (!items.is_empty())
            .then(|| items.iter().map(call).collect())
            .flatten()
    };
    let mut calls = Vec::new();

    let content = if text.contains("<tool_call>") {
        // Qwen / Hermes: each block holds one call; text around them is content.
        let mut content = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("<tool_call>") {
            content.push_str(&rest[..start]);
            let after = &rest[start + "<tool_call>".len()..];
            let (body, next) = match after.find("</tool_call>") {
                Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
                None => (after, ""),
            };
            match serde_json::from_str::<Value>(body.trim())
                .ok()
                .as_ref()
                .and_then(call)
            {
                Some(c) => calls.push(c),
                None => content.push_str(&rest[start..rest.len() - next.len()]),
            }
            rest = next;
        }
        content.push_str(rest);
        content
    } else if let Some(pos) = text.find("[TOOL_CALLS]") {
        // Mistral: a JSON array of calls, or `name[ARGS]{…}` repeated.
        let body = &text[pos + "[TOOL_CALLS]".len()..];
        let parsed = match serde_json::from_str::<Value>(body.trim()) {
            Ok(Value::Array(items)) => all(&items),
            Ok(one @ Value::Object(_)) => all(&[one]),
            _ => body
                .split("[TOOL_CALLS]")
                .map(|part| {
                    let (name, args) = part.split_once("[ARGS]")?;
                    let args = serde_json::from_str::<Value>(args.trim()).ok()?;
                    Some(json!({ "name": name.trim(), "arguments": args }))
                })
                .collect::<Option<Vec<Value>>>()
                .and_then(|items| all(&items)),
        };
        match parsed {
            Some(found) => {
                calls = found;
                text[..pos].to_string()
            }
            None => text.to_string(),
        }
    } else {
        // Llama 3.1+ (`<|python_tag|>` or the bare object, `;`-separated)
        // and the generic fallback (a whole-reply object/array or a fence).
        let body = text
            .trim()
            .strip_prefix("<|python_tag|>")
            .unwrap_or(text.trim());
        let body = fenced_json(body).unwrap_or(body);
        let items: Option<Vec<Value>> = match serde_json::from_str::<Value>(body) {
            Ok(Value::Array(items)) => Some(items),
            Ok(one @ Value::Object(_)) => Some(vec![one]),
            _ => body
                .split(';')
                .map(|part| serde_json::from_str::<Value>(part.trim()).ok())
                .collect(),
        };
        match items.as_deref().and_then(all) {
            Some(found) => {
                calls = found;
                String::new()
            }
            None => text.to_string(),
        }
    };
    let calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, (name, arguments))| ToolCall {
            id: format!("call_{i}"),
            name,
            arguments,
        })
        .collect();
    (content.trim().to_string(), calls)
}

/// The body of a ```json … ``` fence that is the whole text.
fn fenced_json(text: &str) -> Option<&str> {
    let inner = text.strip_prefix("```")?.strip_suffix("```")?;
    let inner = inner.strip_prefix("json").unwrap_or(inner);
    Some(inner.trim())
}

/// `{"name", "arguments" | "parameters"}` (OpenAI's nested `function` too)
/// → the name and the arguments object serialized. Arguments given as a
/// string must hold a JSON object.
fn call_parts(value: &Value) -> Option<(&str, String)> {
    let value = value
        .get("function")
        .filter(|f| f.is_object())
        .unwrap_or(value);
    let name = value.get("name")?.as_str()?;
    let args = value.get("arguments").or_else(|| value.get("parameters"));
    let args = match args {
        None => Value::Object(Map::new()),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => v,
            _ => return None,
        },
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => return None,
    };
    Some((name, args.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Tool> {
        ["get_weather", "add"]
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Tool::from_openai(
                    &json!({"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}),
                    i,
                )
                .unwrap()
            })
            .collect()
    }

    fn names_args(calls: &[ToolCall]) -> Vec<(String, Value)> {
        calls
            .iter()
            .map(|c| (c.name.clone(), serde_json::from_str(&c.arguments).unwrap()))
            .collect()
    }

    #[test]
    fn qwen_hermes_blocks() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}\n</tool_call>";
        let (content, calls) = parse_tool_calls(text, &tools());
        assert_eq!(content, "Let me check.");
        assert_eq!(
            names_args(&calls),
            vec![
                ("get_weather".into(), json!({"city": "Paris"})),
                ("add".into(), json!({"a": 1, "b": 2}))
            ]
        );
        assert_eq!(calls[0].id, "call_0");
        assert_eq!(calls[1].id, "call_1");
        // An unterminated block at the end (generation stopped at </tool_call>).
        let (_, calls) = parse_tool_calls(
            "<tool_call>{\"name\": \"add\", \"arguments\": {}}",
            &tools(),
        );
        assert_eq!(calls.len(), 1);
        // A broken block stays content.
        let (content, calls) =
            parse_tool_calls("<tool_call>{\"name\": \"add\", </tool_call>", &tools());
        assert!(calls.is_empty());
        assert_eq!(content, "<tool_call>{\"name\": \"add\", </tool_call>");
    }

    #[test]
    fn llama_json_and_python_tag() {
        let (content, calls) = parse_tool_calls(
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
            &tools(),
        );
        assert_eq!(content, "");
        assert_eq!(
            names_args(&calls),
            vec![("get_weather".into(), json!({"city": "Oslo"}))]
        );
        let (_, calls) = parse_tool_calls(
            "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": 2}}; {\"name\": \"get_weather\", \"parameters\": {}}",
            &tools(),
        );
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].name, "get_weather");
    }

    #[test]
    fn mistral_array_and_args_form() {
        let (content, calls) = parse_tool_calls(
            "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}, {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}]",
            &tools(),
        );
        assert_eq!(content, "");
        assert_eq!(
            names_args(&calls),
            vec![
                ("add".into(), json!({"a": 1})),
                ("get_weather".into(), json!({"city": "Rome"}))
            ]
        );
        // One unknown tool in the array: nothing is taken, all stays text.
        let partial = "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {}}, {\"name\": \"nope\", \"arguments\": {}}]";
        let (content, calls) = parse_tool_calls(partial, &tools());
        assert!(calls.is_empty());
        assert_eq!(content, partial);
        let (_, calls) = parse_tool_calls("[TOOL_CALLS]add[ARGS]{\"a\": 5}", &tools());
        assert_eq!(names_args(&calls), vec![("add".into(), json!({"a": 5}))]);
    }

    #[test]
    fn generic_fallback_and_plain_text() {
        let (_, calls) = parse_tool_calls(
            "```json\n{\"function\": {\"name\": \"add\", \"arguments\": {\"b\": 3}}}\n```",
            &tools(),
        );
        assert_eq!(names_args(&calls), vec![("add".into(), json!({"b": 3}))]);
        // Plain text, unknown tools and JSON that is not a call stay content.
        for text in [
            "The weather is fine.",
            "{\"name\": \"launch_rockets\", \"arguments\": {}}",
            "{\"temperature\": 21}",
            "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call>",
        ] {
            let (content, calls) = parse_tool_calls(text, &tools());
            assert!(calls.is_empty(), "{text}");
            assert_eq!(content, text);
        }
    }

    #[test]
    fn tools_and_choices_are_checked() {
        assert!(Tool::from_openai(&json!({"type": "function"}), 0).is_err());
        assert!(
            Tool::from_openai(&json!({"type": "retrieval", "function": {"name": "x"}}), 0).is_err()
        );
        assert!(Tool::from_openai(&json!({"function": {"name": "a b"}}), 0).is_err());
        assert!(
            Tool::from_openai(&json!({"function": {"name": "x", "parameters": 3}}), 0).is_err()
        );
        assert_eq!(
            ToolChoice::from_openai(&json!("required")).unwrap(),
            ToolChoice::Required
        );
        assert_eq!(
            ToolChoice::from_openai(&json!({"type": "function", "function": {"name": "add"}}))
                .unwrap(),
            ToolChoice::Function("add".into())
        );
        assert!(ToolChoice::from_openai(&json!("always")).is_err());
        let t = tools();
        assert!(forced_call_constraint(&t, &ToolChoice::Auto)
            .unwrap()
            .is_none());
        assert!(forced_call_constraint(&[], &ToolChoice::Required).is_err());
        assert!(forced_call_constraint(&t, &ToolChoice::Function("nope".into())).is_err());
        let mut twice = t.clone();
        twice.push(t[0].clone());
        assert!(forced_call_constraint(&twice, &ToolChoice::Auto).is_err());
        let Some(ConstraintSpec::JsonSchema(s)) =
            forced_call_constraint(&t, &ToolChoice::Function("add".into())).unwrap()
        else {
            panic!("no schema")
        };
        assert_eq!(s["properties"]["name"]["const"], "add");
        let Some(ConstraintSpec::JsonSchema(s)) =
            forced_call_constraint(&t, &ToolChoice::Required).unwrap()
        else {
            panic!("no schema")
        };
        assert_eq!(s["anyOf"].as_array().unwrap().len(), 2);
    }
}
