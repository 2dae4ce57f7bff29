//! Stripe's form encoding: `a[b][c]=v`, `list[]=x`, `list[0][k]=v`, parsed into a nested JSON value.
//!
//! Every leaf stays a string, as on the wire; `params.rs` converts on access. A map whose keys
//! are all indices (`[]` or `[0]`, `[1]`, …) becomes an array ordered by index, except under
//! `metadata`, whose keys are the caller's own and may well be digits.

use serde_json::{Map, Value};

/// Intermediate tree that keeps insertion order and remembers keys created by `[]`.
enum Node {
    Leaf(String),
    Branch(Vec<(String, Node)>),
}

impl Node {
    fn branch_mut(&mut self) -> &mut Vec<(String, Node)> {
        if let Node::Leaf(_) = self {
            // A key used both as a scalar and as a container (`a=1&a[b]=2`): the container wins.
            *self = Node::Branch(Vec::new());
        }
        match self {
            Node::Branch(children) => children,
            Node::Leaf(_) => unreachable!("converted to a branch above"),
        }
    }
}

/// Parses an `application/x-www-form-urlencoded` string (or a query string) into a JSON object.
pub fn parse(input: &str) -> Value {
    let mut root = Node::Branch(Vec::new());
    for (key, value) in form_urlencoded::parse(input.as_bytes()) {
        if key.is_empty() {
            continue;
        }
        insert(&mut root, &split_key(&key), value.into_owned());
    }
    into_value(root, false)
}

/// `a[b][]` → `["a", "b", ""]`; an unbalanced bracket is kept as part of the name.
fn split_key(key: &str) -> Vec<String> {
    let Some(open) = key.find('[') else {
        return vec![key.to_owned()];
    };
    let mut parts = vec![key[..open].to_owned()];
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            // Malformed: treat the remainder literally.
            let last = parts.pop().unwrap_or_default();
            parts.push(format!("{last}{rest}"));
            return parts;
        };
        parts.push(stripped[..close].to_owned());
        rest = &stripped[close + 1..];
    }
    parts
}

fn insert(node: &mut Node, path: &[String], value: String) {
    let children = node.branch_mut();
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    // `[]` appends a new element; it never merges with the previous one.
    let key = if first.is_empty() {
        children.len().to_string()
    } else {
        first.clone()
    };
    if rest.is_empty() {
        match children.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => *existing = Node::Leaf(value),
            None => children.push((key, Node::Leaf(value))),
        }
        return;
    }
    let index = match children.iter().position(|(k, _)| *k == key) {
        Some(index) => index,
        None => {
            children.push((key, Node::Branch(Vec::new())));
            children.len() - 1
        }
    };
    insert(&mut children[index].1, rest, value);
}

fn into_value(node: Node, keep_map: bool) -> Value {
    match node {
        Node::Leaf(value) => Value::String(value),
        Node::Branch(children) => {
            let all_indices = !children.is_empty()
                && children
                    .iter()
                    .all(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
            if all_indices && !keep_map {
                let mut indexed: Vec<(u64, Node)> = children
                    .into_iter()
                    .map(|(k, v)| (k.parse().unwrap_or(u64::MAX), v))
                    .collect();
                indexed.sort_by_key(|(index, _)| *index);
                Value::Array(
                    indexed
                        .into_iter()
                        .map(|(_, v)| into_value(v, false))
                        .collect(),
                )
            } else {
                let mut map = Map::new();
                for (key, child) in children {
                    let keep = key == "metadata";
                    map.insert(key, into_value(child, keep));
                }
                Value::Object(map)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_keys_become_strings() {
        assert_eq!(
            parse("amount=1000&currency=usd"),
            json!({"amount": "1000", "currency": "usd"})
        );
    }

    #[test]
    fn brackets_nest_objects() {
        let parsed =
            parse("metadata[transaction_id]=tx_1&promotion[type]=coupon&promotion[coupon]=SAVE");
        assert_eq!(
            parsed,
            json!({"metadata": {"transaction_id": "tx_1"}, "promotion": {"type": "coupon", "coupon": "SAVE"}})
        );
    }

    #[test]
    fn empty_brackets_append_to_a_list() {
        assert_eq!(
            parse("expand[]=a&expand[]=b"),
            json!({"expand": ["a", "b"]})
        );
    }

    #[test]
    fn indexed_brackets_build_a_list_of_objects_in_index_order() {
        let parsed = parse("discounts[1][coupon]=B&discounts[0][coupon]=A&discounts[0][x]=1");
        assert_eq!(
            parsed,
            json!({"discounts": [{"coupon": "A", "x": "1"}, {"coupon": "B"}]})
        );
    }

    #[test]
    fn percent_encoded_brackets_are_decoded_first() {
        assert_eq!(
            parse("expand%5B0%5D=latest_charge"),
            json!({"expand": ["latest_charge"]})
        );
    }

    #[test]
    fn metadata_with_numeric_keys_stays_a_map() {
        assert_eq!(
            parse("metadata[0]=zero&metadata[1]=one"),
            json!({"metadata": {"0": "zero", "1": "one"}})
        );
    }

    #[test]
    fn range_filters_nest() {
        assert_eq!(
            parse("created[gte]=10&limit=3"),
            json!({"created": {"gte": "10"}, "limit": "3"})
        );
    }

    #[test]
    fn an_empty_value_is_kept_so_it_can_unset_a_field() {
        assert_eq!(
            parse("metadata[k]=&description="),
            json!({"metadata": {"k": ""}, "description": ""})
        );
    }

    #[test]
    fn a_trailing_question_mark_or_empty_input_parses_to_an_empty_object() {
        assert_eq!(parse(""), json!({}));
        assert_eq!(parse("&&"), json!({}));
    }

    #[test]
    fn an_unbalanced_bracket_is_kept_literally() {
        assert_eq!(parse("a[b=1"), json!({"a[b": "1"}));
    }
}
