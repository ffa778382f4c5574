//! Orders: what a member bought from which restaurant, and placing a new one.
//!
//! Placing an order is where the monolith is most tangled: it reads the member (`member`), then
//! tells `payment` to charge, and `payment` reads the order back through [`OrderRepository`].

mod repository;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::member::{MemberId, MemberRepository};
use crate::money::Money;
use crate::payment::{Payment, PaymentId, PaymentMethod};
use crate::payment::{PaymentError, PaymentService};

pub use repository::{OrderLookup, OrderRepository};

/// Flat fee added to every order for the courier.
pub const DELIVERY_FEE: Money = Money::eur(300);

/// Identifier of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, payment not attempted yet.
    Pending,
    /// Payment captured; the restaurant is cooking.
    Paid,
    /// Handed to the member.
    Delivered,
    /// Payment declined or the member cancelled.
    Cancelled,
    /// Paid, then refunded.
    Refunded,
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Refunded => "refunded",
        })
    }
}

/// One dish on an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Name of the dish as printed on the menu.
    pub item: String,
    /// How many of it.
    pub quantity: u32,
    /// Price of one.
    pub unit_price: Money,
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Its id.
    pub id: OrderId,
    /// Who ordered.
    pub member_id: MemberId,
    /// The member's name at the time of ordering, printed on the delivery slip.
    pub customer: String,
    /// Restaurant that cooks it.
    pub restaurant: String,
    /// Dishes.
    pub lines: Vec<OrderLine>,
    /// Sum of the lines plus [`DELIVERY_FEE`].
    pub total: Money,
    /// Life-cycle state.
    pub status: OrderStatus,
    /// The payment that settled it, once charged.
    pub payment_id: Option<PaymentId>,
}

impl Order {
    /// What an order with these lines costs, delivery included.
    pub fn total_of(lines: &[OrderLine]) -> Money {
        lines
            .iter()
            .map(|line| line.unit_price * line.quantity)
            .sum::<Money>()
            + DELIVERY_FEE
    }

    /// Number of dishes, counting quantities.
    pub fn item_count(&self) -> u32 {
        self.lines.iter().map(|line| line.quantity).sum()
    }
}

/// What a client sends to place an order.
#[derive(Debug, Clone, Deserialize)]
pub struct NewOrder {
    /// Who orders.
    pub member_id: MemberId,
    /// From where.
    pub restaurant: String,
    /// What.
    pub lines: Vec<OrderLine>,
    /// How the member pays.
    pub method: PaymentMethod,
}

/// An order after placement, with the payment that was attempted for it.
#[derive(Debug, Clone, Serialize)]
pub struct PlacedOrder {
    /// The order, `paid` or `cancelled`.
    pub order: Order,
    /// The payment, `captured` or `declined`.
    pub payment: Payment,
}

/// Why an order could not be placed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OrderError {
    /// No member has this id.
    #[error("unknown member {}", .0.0)]
    UnknownMember(MemberId),
    /// The member may not order right now.
    #[error("member {} is suspended", .0.0)]
    MemberSuspended(MemberId),
    /// An order needs at least one dish with a quantity above zero.
    #[error("an order needs at least one dish")]
    Empty,
    /// Charging failed.
    #[error("payment failed")]
    Payment(#[from] PaymentError),
}

/// Places orders: checks the member, stores the order, charges it.
#[derive(Debug)]
pub struct OrderService {
    orders: OrderRepository,
    members: MemberRepository,
    payments: PaymentService,
}

impl OrderService {
    /// A service over these repositories, charging through `payments`.
    pub fn new(
        orders: OrderRepository,
        members: MemberRepository,
        payments: PaymentService,
    ) -> OrderService {
        OrderService {
            orders,
            members,
            payments,
        }
    }

    /// Stores `new` and charges it. A declined charge still stores the order, as `cancelled`.
    pub fn place(&mut self, new: NewOrder) -> Result<PlacedOrder, OrderError> {
        let member = self
            .members
            .find(new.member_id)
            .ok_or(OrderError::UnknownMember(new.member_id))?;
        if member.suspended {
            return Err(OrderError::MemberSuspended(member.id));
        }
        if new.lines.is_empty() || new.lines.iter().any(|line| line.quantity == 0) {
            return Err(OrderError::Empty);
        }

        let id = OrderId(self.orders.next_id());
        let order = Order {
            id,
            member_id: member.id,
            customer: member.name,
            restaurant: new.restaurant,
            total: Order::total_of(&new.lines),
            lines: new.lines,
            status: OrderStatus::Pending,
            payment_id: None,
        };
        self.orders.insert(order);

        // The payment module reads the order back by id to learn what to charge.
        let payment = self.payments.charge(id, new.method)?;
        let status = match payment.status {
            crate::payment::PaymentStatus::Captured => OrderStatus::Paid,
            crate::payment::PaymentStatus::Declined | crate::payment::PaymentStatus::Refunded => {
                OrderStatus::Cancelled
            }
        };
        let order = self
            .orders
            .record_payment(id, payment.id, status)
            .ok_or(OrderError::Payment(PaymentError::UnknownOrder(id)))?;
        Ok(PlacedOrder { order, payment })
    }
}
