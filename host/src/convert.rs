//! Mechanical conversions between the native planner types
//! (`zae_planner::plan`, `zae_planner::config`) and the types generated from
//! the WIT contract ([`crate::bindings`]). Field for field, variant for
//! variant; no decisions live here.

use zae_planner::config::Config;
use zae_planner::plan as native;
use zae_planner::window::Window;

use crate::bindings::zae::aggregator::types as wit;

/// Native window to WIT window.
pub fn window_to_wit(w: Window) -> wit::Window {
    match w {
        Window::Hourly => wit::Window::Hourly,
        Window::Daily => wit::Window::Daily,
        Window::Monthly => wit::Window::Monthly,
    }
}

/// WIT window to native window.
pub fn window_from_wit(w: wit::Window) -> Window {
    match w {
        wit::Window::Hourly => Window::Hourly,
        wit::Window::Daily => Window::Daily,
        wit::Window::Monthly => Window::Monthly,
    }
}

/// Native configuration to WIT configuration.
pub fn config_to_wit(c: &Config) -> wit::Config {
    wit::Config {
        table_name: c.table_name.clone(),
        windows: c.windows.iter().copied().map(window_to_wit).collect(),
        snapshot_ttl_days: c.snapshot_ttl_days,
        archive_bucket: c.archive_bucket.clone(),
        max_shard_count: c.max_shard_count,
    }
}

/// WIT configuration to native configuration.
pub fn config_from_wit(c: wit::Config) -> Config {
    Config {
        table_name: c.table_name,
        windows: c.windows.into_iter().map(window_from_wit).collect(),
        snapshot_ttl_days: c.snapshot_ttl_days,
        archive_bucket: c.archive_bucket,
        max_shard_count: c.max_shard_count,
    }
}

/// Native batch to WIT batch. The event text is borrowed, not copied: the
/// only copy made is the one into the guest's memory.
pub fn batch_to_wit<'a>(b: &native::Batch<'a>, config: &'a wit::Config) -> wit::Batch<'a> {
    wit::Batch { event_json: b.event_json, config, now_ms: b.now_ms, invocation_id: b.invocation_id }
}

/// Native attribute to WIT attribute.
pub fn attribute_to_wit(a: &native::Attribute) -> wit::Attribute {
    wit::Attribute { name: a.name.clone(), value: a.value.clone() }
}

/// WIT attribute to native attribute.
pub fn attribute_from_wit(a: wit::Attribute) -> native::Attribute {
    native::Attribute { name: a.name, value: a.value }
}

/// Native observed items to WIT observed items, which borrow their keys
/// from `keys` (built with [`observed_keys_to_wit`], then referenced).
pub fn observed_to_wit<'a>(
    items: &'a [native::ObservedItem],
    keys: &'a [Vec<&'a wit::Attribute>],
) -> Vec<wit::ObservedItem<'a>> {
    items.iter().zip(keys).map(|(o, key)| wit::ObservedItem { key, item: o.item.as_deref() }).collect()
}

/// The keys of observed items as WIT attributes.
pub fn observed_keys_to_wit(items: &[native::ObservedItem]) -> Vec<Vec<wit::Attribute>> {
    items.iter().map(|o| o.key.iter().map(attribute_to_wit).collect()).collect()
}

fn attributes_from_wit(a: Vec<wit::Attribute>) -> Vec<native::Attribute> {
    a.into_iter().map(attribute_from_wit).collect()
}

/// WIT expression-name placeholder to native.
pub fn expression_name_from_wit(n: wit::ExpressionName) -> native::ExpressionName {
    native::ExpressionName { placeholder: n.placeholder, name: n.name }
}

fn names_from_wit(n: Vec<wit::ExpressionName>) -> Vec<native::ExpressionName> {
    n.into_iter().map(expression_name_from_wit).collect()
}

/// WIT operation to native operation.
pub fn operation_from_wit(op: wit::Operation) -> native::Operation {
    match op {
        wit::Operation::UpdateItem(u) => native::Operation::UpdateItem(native::UpdateItem {
            table_name: u.table_name,
            key: attributes_from_wit(u.key),
            update_expression: u.update_expression,
            condition_expression: u.condition_expression,
            names: names_from_wit(u.names),
            values: attributes_from_wit(u.values),
        }),
        wit::Operation::PutItem(p) => native::Operation::PutItem(native::PutItem {
            table_name: p.table_name,
            item: attributes_from_wit(p.item),
            condition_expression: p.condition_expression,
            names: names_from_wit(p.names),
            values: attributes_from_wit(p.values),
        }),
        wit::Operation::PutObject(o) => native::Operation::PutObject(native::PutObject {
            bucket: o.bucket,
            key: o.key,
            body: o.body,
            content_type: o.content_type,
            content_encoding: o.content_encoding,
        }),
    }
}

/// WIT purpose to native purpose.
pub fn purpose_from_wit(p: wit::Purpose) -> native::Purpose {
    match p {
        wit::Purpose::Snapshot => native::Purpose::Snapshot,
        wit::Purpose::Refill => native::Purpose::Refill,
        wit::Purpose::ShardBump => native::Purpose::ShardBump,
        wit::Purpose::ShardPropagate => native::Purpose::ShardPropagate,
        wit::Purpose::Archive => native::Purpose::Archive,
    }
}

/// WIT condition-failure meaning to native.
pub fn on_condition_failure_from_wit(o: wit::OnConditionFailure) -> native::OnConditionFailure {
    match o {
        wit::OnConditionFailure::Ignore => native::OnConditionFailure::Ignore,
        wit::OnConditionFailure::ResolveWatermarks => native::OnConditionFailure::ResolveWatermarks,
    }
}

/// WIT write to native write.
pub fn write_from_wit(w: wit::Write) -> native::Write {
    native::Write {
        purpose: purpose_from_wit(w.purpose),
        operation: operation_from_wit(w.operation),
        on_condition_failure: on_condition_failure_from_wit(w.on_condition_failure),
        records: w.records,
    }
}

/// WIT record status to native.
pub fn record_status_from_wit(s: wit::RecordStatus) -> native::RecordStatus {
    match s {
        wit::RecordStatus::Used => native::RecordStatus::Used,
        wit::RecordStatus::Skipped(r) => native::RecordStatus::Skipped(r),
        wit::RecordStatus::Invalid(r) => native::RecordStatus::Invalid(r),
    }
}

/// WIT record outcome to native.
pub fn record_outcome_from_wit(o: wit::RecordOutcome) -> native::RecordOutcome {
    native::RecordOutcome {
        index: o.index,
        sequence_number: o.sequence_number,
        status: record_status_from_wit(o.status),
    }
}

/// WIT log level to native.
pub fn log_level_from_wit(l: wit::LogLevel) -> native::LogLevel {
    match l {
        wit::LogLevel::Debug => native::LogLevel::Debug,
        wit::LogLevel::Info => native::LogLevel::Info,
        wit::LogLevel::Warning => native::LogLevel::Warning,
        wit::LogLevel::Error => native::LogLevel::Error,
    }
}

/// WIT log entry to native.
pub fn log_entry_from_wit(l: wit::LogEntry) -> native::LogEntry {
    native::LogEntry {
        level: log_level_from_wit(l.level),
        message: l.message,
        fields: l.fields.into_iter().map(|f| (f.name, f.value)).collect(),
    }
}

/// WIT counters to native.
pub fn counters_from_wit(c: wit::Counters) -> native::Counters {
    native::Counters {
        records: c.records,
        bucket_records: c.bucket_records,
        audit_records: c.audit_records,
        skipped: c.skipped,
        invalid: c.invalid,
        deltas: c.deltas,
        window_time_from_rf: c.window_time_from_rf,
        reserved_limit_deltas: c.reserved_limit_deltas,
        snapshot_writes: c.snapshot_writes,
        refill_writes: c.refill_writes,
        shard_bump_writes: c.shard_bump_writes,
        shard_propagate_writes: c.shard_propagate_writes,
        archive_objects: c.archive_objects,
        archived_events: c.archived_events,
    }
}

/// WIT plan to native plan.
pub fn plan_from_wit(p: wit::Plan) -> native::Plan {
    native::Plan {
        writes: p.writes.into_iter().map(write_from_wit).collect(),
        outcomes: p.outcomes.into_iter().map(record_outcome_from_wit).collect(),
        logs: p.logs.into_iter().map(log_entry_from_wit).collect(),
        counters: counters_from_wit(p.counters),
    }
}

/// WIT plan error to native.
pub fn plan_error_from_wit(e: wit::PlanError) -> native::PlanError {
    match e {
        wit::PlanError::BadEvent(m) => native::PlanError::BadEvent(m),
        wit::PlanError::BadConfig(m) => native::PlanError::BadConfig(m),
    }
}

/// A WIT `result<plan, plan-error>` to its native counterpart.
pub fn plan_result_from_wit(r: Result<wit::Plan, wit::PlanError>) -> Result<native::Plan, native::PlanError> {
    r.map(plan_from_wit).map_err(plan_error_from_wit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips() {
        let c = Config {
            table_name: "t".into(),
            windows: vec![Window::Monthly, Window::Hourly, Window::Daily],
            snapshot_ttl_days: 7,
            archive_bucket: Some("b".into()),
            max_shard_count: 4,
        };
        assert_eq!(config_from_wit(config_to_wit(&c)), c);
    }

    #[test]
    fn plan_converts_field_for_field() {
        let wp = wit::Plan {
            writes: vec![wit::Write {
                purpose: wit::Purpose::ShardPropagate,
                operation: wit::Operation::PutObject(wit::PutObject {
                    bucket: "b".into(),
                    key: "k".into(),
                    body: vec![1, 2, 3],
                    content_type: "application/x-ndjson".into(),
                    content_encoding: "gzip".into(),
                }),
                on_condition_failure: wit::OnConditionFailure::ResolveWatermarks,
                records: vec![0, 2],
            }],
            outcomes: vec![wit::RecordOutcome {
                index: 1,
                sequence_number: Some("9".into()),
                status: wit::RecordStatus::Skipped("why".into()),
            }],
            logs: vec![wit::LogEntry {
                level: wit::LogLevel::Warning,
                message: "m".into(),
                fields: vec![wit::LogField { name: "a".into(), value: "1".into() }],
            }],
            counters: wit::Counters {
                records: 1,
                bucket_records: 2,
                audit_records: 3,
                skipped: 4,
                invalid: 5,
                deltas: 6,
                window_time_from_rf: 7,
                reserved_limit_deltas: 8,
                snapshot_writes: 9,
                refill_writes: 10,
                shard_bump_writes: 11,
                shard_propagate_writes: 12,
                archive_objects: 13,
                archived_events: 14,
            },
        };
        let p = plan_from_wit(wp);
        assert_eq!(p.writes[0].purpose, native::Purpose::ShardPropagate);
        assert_eq!(p.writes[0].on_condition_failure, native::OnConditionFailure::ResolveWatermarks);
        assert_eq!(p.writes[0].records, vec![0, 2]);
        assert_eq!(p.outcomes[0].status, native::RecordStatus::Skipped("why".into()));
        assert_eq!(p.logs[0].level, native::LogLevel::Warning);
        assert_eq!(p.logs[0].fields, vec![("a".to_string(), "1".to_string())]);
        let fields: Vec<u32> = p.counters.fields().iter().map(|(_, v)| *v).collect();
        assert_eq!(fields, (1..=14).collect::<Vec<u32>>());
    }
}
