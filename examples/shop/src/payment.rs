//! Payments: charging an order, refunding, and reconciling payments against orders.
//!
//! This is the module the example extracts into `payment-service`. What keeps it inside the
//! monolith is visible in the imports: to charge, it reads the order's total through
//! `crate::order`, while `order` calls [`PaymentService::charge`].

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::money::Money;
use crate::order::{OrderId, OrderRepository, OrderStatus};
use crate::store::Table;

/// Amounts above this are declined by the card network in this example.
pub const CHARGE_LIMIT: Money = Money::eur(30_000);

/// Identifier of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(pub u64);

/// Outcome of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Money taken.
    Captured,
    /// The provider said no.
    Declined,
    /// Money given back.
    Refunded,
}

impl std::fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PaymentStatus::Captured => "captured",
            PaymentStatus::Declined => "declined",
            PaymentStatus::Refunded => "refunded",
        })
    }
}

/// How a member pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// Credit or debit card.
    Card,
    /// A mobile wallet.
    Wallet,
    /// Bank transfer.
    BankTransfer,
}

/// A payment for one order.
///
/// The field order is the JSON key order of `GET /payments/{id}`; `payment-service` writes the
/// same document with its keys in another order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// Its id.
    pub id: PaymentId,
    /// The order it pays for.
    pub order_id: OrderId,
    /// How much, equal to the order total at charge time.
    pub amount: Money,
    /// Outcome.
    pub status: PaymentStatus,
    /// How it was paid.
    pub method: PaymentMethod,
}

/// Why a payment command failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// No order has this id.
    #[error("unknown order {}", .0.0)]
    UnknownOrder(OrderId),
    /// The order is not waiting for payment.
    #[error("order {} is {status}, not pending", .order.0)]
    NotPayable {
        /// The order.
        order: OrderId,
        /// Its state.
        status: OrderStatus,
    },
    /// No payment has this id.
    #[error("unknown payment {}", .0.0)]
    UnknownPayment(PaymentId),
    /// Only captured payments can be refunded.
    #[error("payment {} is {status}, only captured payments can be refunded", .id.0)]
    NotRefundable {
        /// The payment.
        id: PaymentId,
        /// Its state.
        status: PaymentStatus,
    },
}

/// All payments.
#[derive(Debug, Clone, Default)]
pub struct PaymentRepository {
    table: Table<PaymentId, Payment>,
}

impl PaymentRepository {
    /// The payment with this id.
    pub fn find(&self, id: PaymentId) -> Option<Payment> {
        self.table.get(&id)
    }

    /// Stores `payment`, replacing any payment with the same id.
    pub fn insert(&self, payment: Payment) {
        self.table.reserve_id(payment.id.0);
        self.table.insert(payment.id, payment);
    }

    /// All payments, oldest first.
    pub fn all(&self) -> Vec<Payment> {
        self.table.filter(|_| true)
    }
}

/// The card network, reduced to its one decision.
#[derive(Debug, Default)]
struct Gateway {
    authorizations: u64,
}

impl Gateway {
    fn authorize(&mut self, amount: Money) -> PaymentStatus {
        self.authorizations += 1;
        if amount > CHARGE_LIMIT {
            PaymentStatus::Declined
        } else {
            PaymentStatus::Captured
        }
    }
}

/// Charges and refunds. Commands take `&mut self`: the gateway keeps per-session state.
#[derive(Debug)]
pub struct PaymentService {
    payments: PaymentRepository,
    orders: OrderRepository,
    gateway: Gateway,
}

impl PaymentService {
    /// A service storing into `payments` and reading totals from `orders`.
    pub fn new(payments: PaymentRepository, orders: OrderRepository) -> PaymentService {
        PaymentService {
            payments,
            orders,
            gateway: Gateway::default(),
        }
    }

    /// Charges the total of a pending order. A declined charge is a stored payment, not an error.
    pub fn charge(
        &mut self,
        order_id: OrderId,
        method: PaymentMethod,
    ) -> Result<Payment, PaymentError> {
        let order = self
            .orders
            .find(order_id)
            .ok_or(PaymentError::UnknownOrder(order_id))?;
        if order.status != OrderStatus::Pending {
            return Err(PaymentError::NotPayable {
                order: order_id,
                status: order.status,
            });
        }
        let payment = Payment {
            id: PaymentId(self.payments.table.next_id()),
            order_id,
            amount: order.total,
            status: self.gateway.authorize(order.total),
            method,
        };
        self.payments.insert(payment.clone());
        Ok(payment)
    }

    /// Gives the money of a captured payment back.
    pub fn refund(&mut self, id: PaymentId) -> Result<Payment, PaymentError> {
        let (payment, refunded) = self
            .payments
            .table
            .update(&id, |payment| {
                if payment.status == PaymentStatus::Captured {
                    payment.status = PaymentStatus::Refunded;
                    Ok(())
                } else {
                    Err(payment.status)
                }
            })
            .ok_or(PaymentError::UnknownPayment(id))?;
        match refunded {
            Ok(()) => Ok(payment),
            Err(status) => Err(PaymentError::NotRefundable { id, status }),
        }
    }
}

/// A captured payment whose amount no longer matches its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// The payment.
    pub payment: PaymentId,
    /// What was charged.
    pub charged: Money,
    /// What the order says now, `None` if the order is gone.
    pub order_total: Option<Money>,
}

/// Finds captured payments that disagree with their order, for the nightly finance report.
pub fn reconcile<L>(payments: &PaymentRepository, orders: &L) -> Vec<Mismatch>
where
    L: crate::order::OrderLookup,
{
    payments
        .all()
        .into_iter()
        .filter(|payment| payment.status == PaymentStatus::Captured)
        .filter_map(|payment| {
            let order_total = orders.find(payment.order_id).map(|order| order.total);
            (order_total != Some(payment.amount)).then_some(Mismatch {
                payment: payment.id,
                charged: payment.amount,
                order_total,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{Order, OrderLine};

    // The member id is needed only to build an order fixture: this is the one reference from
    // `payment` to `member`, and it exists only in tests.
    fn pending_order(orders: &OrderRepository, unit_price: Money) -> OrderId {
        let lines = vec![OrderLine {
            item: "Margherita".to_owned(),
            quantity: 2,
            unit_price,
        }];
        let id = OrderId(orders.next_id());
        orders.insert(Order {
            id,
            member_id: crate::member::MemberId(1),
            customer: "Test Member".to_owned(),
            restaurant: "Luigi's".to_owned(),
            total: Order::total_of(&lines),
            lines,
            status: OrderStatus::Pending,
            payment_id: None,
        });
        id
    }

    #[test]
    fn charge_takes_the_order_total() {
        let orders = OrderRepository::default();
        let mut service = PaymentService::new(PaymentRepository::default(), orders.clone());
        let order = pending_order(&orders, Money::eur(950));

        let payment = service.charge(order, PaymentMethod::Card).expect("charge");

        assert_eq!(payment.amount, Money::eur(2 * 950 + 300));
        assert_eq!(payment.status, PaymentStatus::Captured);
    }

    #[test]
    fn charge_above_the_limit_is_declined() {
        let orders = OrderRepository::default();
        let mut service = PaymentService::new(PaymentRepository::default(), orders.clone());
        let order = pending_order(&orders, CHARGE_LIMIT);

        let payment = service
            .charge(order, PaymentMethod::Wallet)
            .expect("charge");

        assert_eq!(payment.status, PaymentStatus::Declined);
    }

    #[test]
    fn refund_twice_is_refused() {
        let orders = OrderRepository::default();
        let mut service = PaymentService::new(PaymentRepository::default(), orders.clone());
        let order = pending_order(&orders, Money::eur(1000));
        let payment = service.charge(order, PaymentMethod::Card).expect("charge");

        let refunded = service.refund(payment.id).expect("first refund");
        let again = service.refund(payment.id);

        assert_eq!(refunded.status, PaymentStatus::Refunded);
        assert!(matches!(
            again,
            Err(PaymentError::NotRefundable {
                status: PaymentStatus::Refunded,
                ..
            })
        ));
    }

    #[test]
    fn reconcile_reports_changed_totals() {
        let orders = OrderRepository::default();
        let payments = PaymentRepository::default();
        let mut service = PaymentService::new(payments.clone(), orders.clone());
        let order = pending_order(&orders, Money::eur(1000));
        let payment = service.charge(order, PaymentMethod::Card).expect("charge");
        assert_eq!(reconcile(&payments, &orders), []);

        let mut changed = orders.find(order).expect("order exists");
        changed.total = Money::eur(1);
        orders.insert(changed);

        assert_eq!(
            reconcile(&payments, &orders),
            [Mismatch {
                payment: payment.id,
                charged: Money::eur(2300),
                order_total: Some(Money::eur(1)),
            }]
        );
    }
}
