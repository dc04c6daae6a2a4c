//! prometheus-adapter's templates: Go `text/template` with `<<` and `>>` as delimiters, limited
//! to what its configurations use — field references such as `<<.Series>>`. Anything else
//! (`<<range …>>`, pipelines) is refused when the configuration is read, with the field named,
//! rather than rendered wrong at query time.

use std::fmt;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Field(&'static str),
}

/// A template checked against the fields it may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    #[error("`<<` at byte {0} is never closed by `>>`")]
    Unclosed(usize),
    #[error("`<<{action}>>` is not supported here; use one of {}", allowed_list(.allowed))]
    Unsupported {
        action: String,
        allowed: &'static [&'static str],
    },
}

fn allowed_list(allowed: &[&str]) -> String {
    allowed
        .iter()
        .map(|field| format!("<<.{field}>>"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Template {
    /// Parses `text`, accepting only `<<.Field>>` for the fields in `allowed`.
    pub fn parse(text: &str, allowed: &'static [&'static str]) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut offset = 0;
        while let Some(start) = rest.find("<<") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find(">>") else {
                return Err(TemplateError::Unclosed(offset + start));
            };
            let action = after[..end].trim();
            let field = action
                .strip_prefix('.')
                .and_then(|name| allowed.iter().copied().find(|a| *a == name))
                .ok_or_else(|| TemplateError::Unsupported {
                    action: action.to_string(),
                    allowed,
                })?;
            parts.push(Part::Field(field));
            let consumed = start + 2 + end + 2;
            rest = &rest[consumed..];
            offset += consumed;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// Renders with `value` giving each field's text.
    pub fn render<'a>(&self, value: impl Fn(&str) -> &'a str) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field(field) => out.push_str(value(field)),
            }
        }
        out
    }

    /// Whether the template refers to `field`.
    pub fn uses(&self, field: &str) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Field(f) if *f == field))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(text)?,
                Part::Field(field) => write!(f, "<<.{field}>>")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUERY: &[&str] = &["Series", "LabelMatchers", "GroupBy"];

    #[test]
    fn renders_the_fields_prometheus_adapter_documents() {
        let template = Template::parse(
            "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<< .GroupBy >>)",
            QUERY,
        )
        .expect("valid");
        let rendered = template.render(|field| match field {
            "Series" => "http_requests_total",
            "LabelMatchers" => r#"namespace="demo",pod!="""#,
            _ => "pod",
        });
        assert_eq!(
            rendered,
            r#"sum(rate(http_requests_total{namespace="demo",pod!=""}[2m])) by (pod)"#
        );
        assert!(template.uses("GroupBy"));
    }

    #[test]
    fn refuses_what_it_cannot_render_faithfully() {
        assert_eq!(
            Template::parse("x <<.Series", QUERY),
            Err(TemplateError::Unclosed(2))
        );
        let error = Template::parse("<<range .GroupBySlice>>x<<end>>", QUERY).unwrap_err();
        assert!(error.to_string().contains("<<.Series>>"), "{error}");
        assert!(Template::parse("<<.Resource>>", QUERY).is_err());
    }
}
