//! The invariants of `Config::from_env` (`docs/specification.md#configuration`).

use zae_planner::config::{Config, Limiter};

use super::gen::EnvVars;

/// `Config::from_env` never panics and is deterministic; what it accepts
/// validates and, once the zae-limiter semantics are chosen (by
/// `ZAE_LIMITER_VERSION`, or by the host from the table's version record),
/// plans an empty batch; unchosen, `plan` refuses it as bad-config.
pub fn check_config(vars: &EnvVars) {
    let pairs: Vec<(&str, &str)> = vars.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let a = Config::from_env(pairs.iter().copied());
    assert_eq!(a, Config::from_env(pairs.iter().copied()), "from_env is not deterministic");
    match a {
        Ok(c) => {
            assert!(c.validate().is_ok(), "from_env accepted {c:?}");
            let batch = zae_planner::Batch { event_json: "{\"Records\":[]}", config: &c, now_ms: 0, invocation_id: "" };
            match (c.limiter, zae_planner::plan(&batch)) {
                (Some(_), answer) => {
                    answer.expect("an accepted configuration plans");
                }
                (None, Err(zae_planner::PlanError::BadConfig(e))) => assert_eq!(e.setting, "limiter"),
                (None, answer) => panic!("planned without a chosen limiter: {answer:?}"),
            }
            for limiter in [Limiter::V013, Limiter::V017] {
                let chosen = Config { limiter: Some(limiter), ..c.clone() };
                let batch = zae_planner::Batch {
                    event_json: "{\"Records\":[]}",
                    config: &chosen,
                    now_ms: 0,
                    invocation_id: "",
                };
                zae_planner::plan(&batch).expect("an accepted configuration plans once its limiter is chosen");
            }
        }
        Err(e) => {
            let known = zae_planner::config::VARIABLES;
            assert!(known.contains(&e.setting.as_str()), "error names {:?}, no variable", e.setting);
        }
    }
}
