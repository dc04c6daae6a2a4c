//! `spec.behavior` with the API server's defaults filled in, as the controller sees it: a
//! direction left out gets the default rules, a field left out its default
//! (`SetDefaults_HorizontalPodAutoscalerBehavior`, `GenerateHPAScaleUpRules` and
//! `GenerateHPAScaleDownRules` in `pkg/apis/autoscaling/v2/defaults.go`), and a scale-down
//! stabilization window left out is the controller's flag
//! (`maybeInitScaleDownStabilizationWindow` in `horizontal.go`). An HPA without `behavior` is
//! not this: it takes the controller's legacy path ([`super::normalize::legacy`]).

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

use crate::quantity::Quantity;

/// How a policy limits change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period_seconds: i32,
}

impl Policy {
    pub fn pods(value: i32, period_seconds: i32) -> Policy {
        Policy {
            kind: PolicyKind::Pods,
            value,
            period_seconds,
        }
    }

    pub fn percent(value: i32, period_seconds: i32) -> Policy {
        Policy {
            kind: PolicyKind::Percent,
            value,
            period_seconds,
        }
    }
}

/// `selectPolicy`: which policy's limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No change in this direction.
    Disabled,
}

/// One direction of `spec.behavior`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_seconds: i32,
    pub policies: Vec<Policy>,
    pub select: Select,
    /// This direction's tolerance; the controller's own when `None`.
    pub tolerance: Option<f64>,
}

impl Rules {
    /// The API server's scale-up default: 4 pods or 100 % per 15 s, the larger; no window.
    pub(crate) fn default_scale_up() -> Rules {
        Rules {
            stabilization_seconds: 0,
            policies: vec![Policy::pods(4, 15), Policy::percent(100, 15)],
            select: Select::Max,
            tolerance: None,
        }
    }

    /// The scale-down default: 100 % per 15 s, behind the controller's 300 s window.
    pub(crate) fn default_scale_down() -> Rules {
        Rules {
            stabilization_seconds: super::DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
            policies: vec![Policy::percent(100, 15)],
            select: Select::Max,
            tolerance: None,
        }
    }

    /// `copyHPAScalingRules`: the fields set in `spec`, the defaults for the rest.
    fn from_spec(spec: Option<&HPAScalingRules>, defaults: Rules) -> Rules {
        let Some(spec) = spec else {
            return defaults;
        };
        Rules {
            stabilization_seconds: spec
                .stabilization_window_seconds
                .unwrap_or(defaults.stabilization_seconds),
            policies: match &spec.policies {
                Some(policies) => policies
                    .iter()
                    .map(|p| Policy {
                        kind: if p.type_ == "Percent" {
                            PolicyKind::Percent
                        } else {
                            PolicyKind::Pods
                        },
                        value: p.value,
                        period_seconds: p.period_seconds,
                    })
                    .collect(),
                None => defaults.policies,
            },
            select: match spec.select_policy.as_deref() {
                Some("Disabled") => Select::Disabled,
                Some("Min") => Select::Min,
                Some(_) => Select::Max,
                None => defaults.select,
            },
            tolerance: spec
                .tolerance
                .as_ref()
                .and_then(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.as_f64()),
        }
    }

    /// The longest policy period: scale events older than it no longer matter.
    pub(crate) fn longest_period(&self) -> i32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// `spec.behavior`, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub scale_up: Rules,
    pub scale_down: Rules,
}

impl Default for Behavior {
    /// `behavior: {}`: both directions defaulted.
    fn default() -> Self {
        Behavior {
            scale_up: Rules::default_scale_up(),
            scale_down: Rules::default_scale_down(),
        }
    }
}

impl Behavior {
    pub(crate) fn from_spec(spec: &HorizontalPodAutoscalerBehavior) -> Behavior {
        Behavior {
            scale_up: Rules::from_spec(spec.scale_up.as_ref(), Rules::default_scale_up()),
            scale_down: Rules::from_spec(spec.scale_down.as_ref(), Rules::default_scale_down()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_left_out_take_the_defaults() {
        let spec: HorizontalPodAutoscalerBehavior = serde_json::from_value(serde_json::json!({
            "scaleUp": {"policies": [{"type": "Pods", "value": 2, "periodSeconds": 60}],
                        "tolerance": "50m"},
            "scaleDown": {"selectPolicy": "Disabled"}
        }))
        .expect("behavior");
        let behavior = Behavior::from_spec(&spec);
        assert_eq!(behavior.scale_up.policies, [Policy::pods(2, 60)]);
        assert_eq!(behavior.scale_up.stabilization_seconds, 0);
        assert_eq!(behavior.scale_up.select, Select::Max);
        assert_eq!(behavior.scale_up.tolerance, Some(0.05));
        assert_eq!(behavior.scale_down.select, Select::Disabled);
        assert_eq!(behavior.scale_down.stabilization_seconds, 300);
        assert_eq!(behavior.scale_down.policies, [Policy::percent(100, 15)]);
        let empty: HorizontalPodAutoscalerBehavior =
            serde_json::from_value(serde_json::json!({})).expect("behavior");
        assert_eq!(Behavior::from_spec(&empty), Behavior::default());
    }
}
