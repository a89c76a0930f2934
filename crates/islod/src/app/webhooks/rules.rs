//! A rule's `when`: `{json_path, equals}` or `{op: …}` (`equals`, `not_equals`, `exists`,
//! `not_exists`, `contains`, `matches`, `greater_than[_or_equal]`, `less_than[_or_equal]`,
//! `all`, `any`, `not`) over the event's JSON body.

use serde_json::Value;

use super::verify::json_path;

/// Whether `when` is a condition this reads.
pub fn check(when: &Value) -> Result<(), String> {
    eval(when, &Value::Null).map(drop)
}

fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64)
}

fn path_of(w: &Value) -> Result<&str, String> {
    w.get("json_path")
        .and_then(Value::as_str)
        .ok_or_else(|| "json_path is required".to_string())
}

/// Whether `when` holds for `body`.
pub fn eval(when: &Value, body: &Value) -> Result<bool, String> {
    let op = match (when.get("op").and_then(Value::as_str), when.get("equals")) {
        (Some(op), _) => op,
        (None, Some(_)) => "equals_short",
        (None, None) => return Err("expected {json_path, equals} or {op, …}".into()),
    };
    let at =
        |w: &Value| -> Result<Option<Value>, String> { Ok(json_path(body, path_of(w)?).cloned()) };
    let list = |w: &Value| -> Result<Vec<Value>, String> {
        w.get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| "conditions must be a list".to_string())
    };
    Ok(match op {
        "equals_short" => at(when)?.as_ref() == when.get("equals"),
        "equals" => at(when)?.as_ref() == when.get("value"),
        "not_equals" => at(when)?.as_ref() != when.get("value"),
        "exists" => at(when)?.is_some(),
        "not_exists" => at(when)?.is_none(),
        "contains" => {
            let want = when.get("value").ok_or("value is required")?;
            match at(when)? {
                Some(Value::Array(a)) => a.contains(want),
                Some(Value::String(s)) => want.as_str().is_some_and(|w| s.contains(w)),
                _ => false,
            }
        }
        "matches" => {
            let p = when
                .get("pattern")
                .and_then(Value::as_str)
                .ok_or("pattern is required")?;
            let re = regex::Regex::new(p).map_err(|e| e.to_string())?;
            at(when)?
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|s| re.is_match(s))
        }
        "greater_than" | "greater_than_or_equal" | "less_than" | "less_than_or_equal" => {
            let want = num(when.get("value")).ok_or("value must be a number")?;
            let Some(got) = num(at(when)?.as_ref()) else {
                return Ok(false);
            };
            match op {
                "greater_than" => got > want,
                "greater_than_or_equal" => got >= want,
                "less_than" => got < want,
                _ => got <= want,
            }
        }
        "all" => {
            let mut all = true;
            for c in list(when)? {
                all &= eval(&c, body)?;
            }
            all
        }
        "any" => {
            let mut any = false;
            for c in list(when)? {
                any |= eval(&c, body)?;
            }
            any
        }
        "not" => !eval(when.get("condition").ok_or("condition is required")?, body)?,
        other => return Err(format!("unknown op {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_over_a_push_event() {
        let push = json!({"ref": "refs/heads/main", "commits": [1, 2], "size": 3,
                          "repository": {"name": "demo"}});
        let t = |w: Value| eval(&w, &push).unwrap();
        assert!(t(
            json!({"json_path": "$.ref", "equals": "refs/heads/main"})
        ));
        assert!(!t(
            json!({"op": "equals", "json_path": "$.ref", "value": "x"})
        ));
        assert!(t(json!({"op": "exists", "json_path": "repository.name"})));
        assert!(t(
            json!({"op": "contains", "json_path": "$.commits", "value": 2})
        ));
        assert!(t(
            json!({"op": "matches", "json_path": "$.ref", "pattern": "^refs/heads/"})
        ));
        assert!(t(
            json!({"op": "greater_than", "json_path": "$.size", "value": 2})
        ));
        assert!(t(json!({"op": "all", "conditions": [
            {"op": "exists", "json_path": "$.ref"},
            {"op": "not", "condition": {"op": "exists", "json_path": "$.deleted"}}]})));
        assert!(check(&json!({"op": "sideways"})).is_err());
        assert!(check(&json!({"op": "matches", "json_path": "$.a", "pattern": "("})).is_err());
    }
}
