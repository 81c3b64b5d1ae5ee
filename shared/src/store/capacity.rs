//! Consumed capacity: running totals for benchmarks and tests, and EMF metrics in Lambda.
//! DynamoDB reports a plain call's units as one total (`CapacityUnits`), so each call site
//! says whether it read or wrote.
use aws_sdk_dynamodb::types::ConsumedCapacity;

use super::{Capacity, DynamoStore};
use crate::metrics::{Metrics, Unit};

impl DynamoStore {
    /// Records the capacity of a GetItem, Query or Scan.
    pub(crate) fn record_read(&self, capacity: Option<&ConsumedCapacity>) {
        self.add_consumed(total(capacity), 0.0);
    }

    /// Records the capacity of a PutItem, UpdateItem, DeleteItem or BatchWriteItem table entry.
    pub(crate) fn record_write(&self, capacity: Option<&ConsumedCapacity>) {
        self.add_consumed(0.0, total(capacity));
    }

    /// Records the capacity of a TransactWriteItems call.
    pub(crate) fn record(&self, capacity: &[ConsumedCapacity]) {
        self.add_consumed(0.0, capacity.iter().map(|c| total(Some(c))).sum());
    }

    fn add_consumed(&self, read_units: f64, write_units: f64) {
        if let Ok(mut consumed) = self.consumed.lock() {
            *consumed = Capacity {
                read_units: consumed.read_units + read_units,
                write_units: consumed.write_units + write_units,
            };
        }
        if let Some(function) = &self.config.metrics_function {
            Metrics::new(function.clone())
                .add("ConsumedReadCapacity", read_units, Unit::None)
                .add("ConsumedWriteCapacity", write_units, Unit::None)
                .emit();
        }
    }
}

fn total(capacity: Option<&ConsumedCapacity>) -> f64 {
    capacity.and_then(|c| c.capacity_units().or(c.write_capacity_units()).or(c.read_capacity_units())).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_read_whichever_field_carries_it() {
        assert_eq!(total(Some(&ConsumedCapacity::builder().capacity_units(2.5).build())), 2.5);
        assert_eq!(total(Some(&ConsumedCapacity::builder().write_capacity_units(2.0).build())), 2.0);
        assert_eq!(total(None), 0.0);
    }
}
