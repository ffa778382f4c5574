//! The running shop: one handle on every repository, and the data a fresh shop starts with.
//!
//! Like `http`, this is wiring: it may reach every domain module, and no domain module reaches it.

use crate::coupon::{Coupon, CouponCode, CouponRepository, Discount};
use crate::member::{Grade, Member, MemberId, MemberRepository};
use crate::money::Money;
use crate::order::{Order, OrderId, OrderLine, OrderRepository, OrderStatus};
use crate::payment::{Payment, PaymentId, PaymentMethod, PaymentRepository, PaymentStatus};

/// Number of seeded orders, and of seeded payments: order `n` is paid by payment `n`.
pub const SEEDED_ORDERS: u64 = 100;

/// Number of seeded members.
pub const SEEDED_MEMBERS: u64 = 10;

/// Handles on all tables. Clones share the data.
#[derive(Debug, Clone, Default)]
pub struct Shop {
    /// Orders.
    pub orders: OrderRepository,
    /// Payments.
    pub payments: PaymentRepository,
    /// Members.
    pub members: MemberRepository,
    /// Coupons.
    pub coupons: CouponRepository,
}

const NAMES: [&str; 10] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Edsger Dijkstra",
    "Margaret Hamilton",
    "Ken Thompson",
    "Radia Perlman",
];

const RESTAURANTS: [&str; 6] = [
    "Luigi's Pizzeria",
    "Pho Saigon",
    "Burger Lab",
    "Sushi Kai",
    "Curry House",
    "Green Bowl",
];

const DISHES: [&str; 8] = [
    "Margherita",
    "Pho bo",
    "Cheeseburger",
    "Salmon nigiri",
    "Chicken korma",
    "Falafel bowl",
    "Pad thai",
    "Caesar salad",
];

impl Shop {
    /// A shop with the demo data: members 1..=10, orders and payments 1..=100, a few coupons.
    ///
    /// The data is a pure function of the ids, so every start (and `payment-service`) agrees.
    pub fn seeded() -> Shop {
        let shop = Shop::default();
        for n in 1..=SEEDED_MEMBERS {
            shop.members.insert(seeded_member(n));
            shop.coupons.insert(Coupon::new(
                CouponCode(format!("WELCOME-{n}")),
                Some(MemberId(n)),
                Discount::Percent(10),
                Grade::Bronze,
            ));
        }
        shop.coupons.insert(Coupon::new(
            CouponCode("FREESHIP".to_owned()),
            None,
            Discount::Fixed(crate::order::DELIVERY_FEE),
            Grade::Bronze,
        ));
        shop.coupons.insert(Coupon::new(
            CouponCode("GOLD15".to_owned()),
            None,
            Discount::Percent(15),
            Grade::Gold,
        ));
        shop.coupons.insert(Coupon::new(
            CouponCode("VIP20".to_owned()),
            None,
            Discount::Percent(20),
            Grade::Vip,
        ));
        for n in 1..=SEEDED_ORDERS {
            let order = seeded_order(n);
            shop.payments.insert(Payment {
                id: PaymentId(n),
                order_id: order.id,
                amount: order.total,
                status: PaymentStatus::Captured,
                method: seeded_method(n),
            });
            shop.orders.insert(order);
        }
        shop
    }
}

fn seeded_member(n: u64) -> Member {
    let name = NAMES[usize::try_from((n - 1) % 10).unwrap_or_default()];
    let grade = match n % 4 {
        0 => Grade::Vip,
        1 => Grade::Bronze,
        2 => Grade::Silver,
        _ => Grade::Gold,
    };
    let first = name.split(' ').next().unwrap_or(name).to_lowercase();
    Member {
        id: MemberId(n),
        name: name.to_owned(),
        email: format!("{first}@example.com"),
        grade,
        suspended: n == SEEDED_MEMBERS,
    }
}

/// Order `n`: one dish of 8.00 to 24.99 EUR, one to three of it, plus delivery.
fn seeded_order(n: u64) -> Order {
    let pick = |len: usize| usize::try_from(n).unwrap_or_default() % len;
    let lines = vec![OrderLine {
        item: DISHES[pick(DISHES.len())].to_owned(),
        quantity: u32::try_from(1 + n % 3).unwrap_or(1),
        unit_price: Money::eur(800 + (n * 37) % 1700),
    }];
    let member_id = MemberId((n - 1) % SEEDED_MEMBERS + 1);
    Order {
        id: OrderId(n),
        member_id,
        customer: seeded_member(member_id.0).name,
        restaurant: RESTAURANTS[pick(RESTAURANTS.len())].to_owned(),
        total: Order::total_of(&lines),
        lines,
        // The newest few are still on their way.
        status: if n > SEEDED_ORDERS - 5 {
            OrderStatus::Paid
        } else {
            OrderStatus::Delivered
        },
        payment_id: Some(PaymentId(n)),
    }
}

fn seeded_method(n: u64) -> PaymentMethod {
    match n % 3 {
        0 => PaymentMethod::Card,
        1 => PaymentMethod::Wallet,
        _ => PaymentMethod::BankTransfer,
    }
}
