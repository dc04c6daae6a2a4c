//! Content negotiation: which body a request's `Accept` header allows (`docs/contract.md`,
//! Content negotiation, and Discovery documents for the v2 type).
//!
//! JSON is served whenever `Accept` allows it (`*/*`, `application/*`, `application/json`), even
//! when protobuf is preferred, as the HPA's client asks. On `/apis` only, the v2 aggregated
//! discovery type (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`) is
//! honoured. Anything else is a 406.

use axum::http::{HeaderMap, header};

use super::error::Error;

/// The body format a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    /// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
    DiscoveryV2,
}

pub(crate) const DISCOVERY_V2_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Picks the format for a request; `discovery_v2` says whether this path can serve v2 discovery.
pub(crate) fn negotiate(headers: &HeaderMap, discovery_v2: bool) -> Result<Format, Error> {
    let mut accept_values = headers.get_all(header::ACCEPT).iter().peekable();
    if accept_values.peek().is_none() {
        return Ok(Format::Json);
    }
    let mut json = false;
    for value in accept_values {
        let Ok(text) = value.to_str() else {
            return Err(Error::NotAcceptable);
        };
        for range in text.split(',') {
            match media_range(range) {
                Some(Format::DiscoveryV2) if discovery_v2 => return Ok(Format::DiscoveryV2),
                Some(Format::Json) => json = true,
                _ => {}
            }
        }
    }
    if json {
        Ok(Format::Json)
    } else {
        Err(Error::NotAcceptable)
    }
}

/// What one media range of an `Accept` header allows, if anything we serve.
fn media_range(range: &str) -> Option<Format> {
    let mut parts = range.split(';').map(str::trim);
    let media_type = parts.next()?.to_ascii_lowercase();
    let mut group = None;
    let mut version = None;
    let mut kind = None;
    for parameter in parts {
        let (key, value) = parameter.split_once('=')?;
        let value = value.trim().trim_matches('"');
        match key.trim().to_ascii_lowercase().as_str() {
            "q" if value.parse::<f32>().is_ok_and(|q| q <= 0.0) => return None,
            "g" => group = Some(value.to_string()),
            "v" => version = Some(value.to_string()),
            "as" => kind = Some(value.to_string()),
            _ => {}
        }
    }
    match media_type.as_str() {
        "application/json" if group.is_some() || kind.is_some() => {
            let is_v2 = group.as_deref() == Some("apidiscovery.k8s.io")
                && version.as_deref() == Some("v2")
                && kind.as_deref() == Some("APIGroupDiscoveryList");
            is_v2.then_some(Format::DiscoveryV2)
        }
        "application/json" | "application/*" | "*/*" => Some(Format::Json),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(accept: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_str(accept).expect("ascii"),
            );
        }
        headers
    }

    #[test]
    fn serves_json_whenever_allowed() {
        let cases = [
            (None, false, Ok(Format::Json)),
            (Some("application/json, */*"), false, Ok(Format::Json)),
            (
                Some("application/vnd.kubernetes.protobuf, */*"),
                false,
                Ok(Format::Json),
            ),
            (Some("application/*"), false, Ok(Format::Json)),
            (
                Some("application/json;charset=utf-8"),
                false,
                Ok(Format::Json),
            ),
            (
                Some("application/vnd.kubernetes.protobuf"),
                false,
                Err(Error::NotAcceptable),
            ),
            (Some("text/html"), false, Err(Error::NotAcceptable)),
            (
                Some("application/json;q=0"),
                false,
                Err(Error::NotAcceptable),
            ),
            (
                Some(DISCOVERY_V2_CONTENT_TYPE),
                true,
                Ok(Format::DiscoveryV2),
            ),
            (
                Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
                ),
                true,
                Ok(Format::DiscoveryV2),
            ),
            // v2 discovery only where it is served; plain JSON as the fallback there
            (
                Some(
                    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
                ),
                false,
                Ok(Format::Json),
            ),
            (
                Some(DISCOVERY_V2_CONTENT_TYPE),
                false,
                Err(Error::NotAcceptable),
            ),
            (
                Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
                true,
                Err(Error::NotAcceptable),
            ),
        ];
        for (accept, v2, want) in cases {
            assert_eq!(negotiate(&headers(accept), v2), want, "{accept:?}");
        }
    }
}
