//! Storage of orders, and the read-only [`OrderLookup`] view other modules query.

use super::{Order, OrderId, OrderStatus};
use crate::member::MemberId;
use crate::payment::PaymentId;
use crate::store::Table;

/// Read access to orders, for code that must not change them.
pub trait OrderLookup {
    /// The order with this id.
    fn find(&self, id: OrderId) -> Option<Order>;
}

/// All orders.
#[derive(Debug, Clone, Default)]
pub struct OrderRepository {
    table: Table<OrderId, Order>,
}

impl OrderRepository {
    /// The order with this id.
    pub fn find(&self, id: OrderId) -> Option<Order> {
        self.table.get(&id)
    }

    /// The next unused order id.
    pub fn next_id(&self) -> u64 {
        self.table.next_id()
    }

    /// Stores `order`, replacing any order with the same id.
    pub fn insert(&self, order: Order) {
        self.table.reserve_id(order.id.0);
        self.table.insert(order.id, order);
    }

    /// Links `payment` to the order and moves it to `status`. Returns the updated order.
    pub fn record_payment(
        &self,
        id: OrderId,
        payment: PaymentId,
        status: OrderStatus,
    ) -> Option<Order> {
        let (order, ()) = self.table.update(&id, |order| {
            order.payment_id = Some(payment);
            order.status = status;
        })?;
        Some(order)
    }

    /// Moves the order to `status`. Returns the updated order.
    pub fn set_status(&self, id: OrderId, status: OrderStatus) -> Option<Order> {
        let (order, ()) = self.table.update(&id, |order| order.status = status)?;
        Some(order)
    }

    /// All orders, oldest first.
    pub fn all(&self) -> Vec<Order> {
        self.table.filter(|_| true)
    }

    /// The `limit` most recent orders, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Order> {
        let mut orders = self.all();
        orders.reverse();
        orders.truncate(limit);
        orders
    }

    /// Orders placed by `member`, oldest first.
    pub fn for_member(&self, member: MemberId) -> Vec<Order> {
        self.table.filter(|order| order.member_id == member)
    }
}

impl OrderLookup for OrderRepository {
    fn find(&self, id: OrderId) -> Option<Order> {
        OrderRepository::find(self, id)
    }
}
