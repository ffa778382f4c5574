//! The home page: a greeting and the latest orders on the platform.

use serde::Serialize;

use super::{Badge, Card, Render, Tone, cards};
use crate::order::{Order, OrderRepository, OrderStatus};

/// How many orders the home page shows.
pub const RECENT_ORDERS: usize = 5;

/// What the home page shows.
#[derive(Debug, Clone, Serialize)]
pub struct HomePage {
    /// Greeting at the top.
    pub headline: String,
    /// Number of orders on the platform.
    pub order_count: usize,
    /// The latest orders, newest first.
    pub recent_orders: Vec<Card>,
}

/// Builds the home page from the order book.
pub fn home_page(orders: &OrderRepository) -> HomePage {
    let all = orders.all();
    let recent: Vec<Order> = orders.recent(RECENT_ORDERS);
    HomePage {
        headline: "Hungry? Your favourite restaurants deliver.".to_owned(),
        order_count: all.len(),
        recent_orders: cards(&recent),
    }
}

impl Render for crate::order::Order {
    fn card(&self) -> Card {
        let (label, tone) = match self.status {
            OrderStatus::Pending => ("pending", Tone::Neutral),
            OrderStatus::Paid => ("cooking", Tone::Highlight),
            OrderStatus::Delivered => ("delivered", Tone::Positive),
            OrderStatus::Cancelled => ("cancelled", Tone::Warning),
            OrderStatus::Refunded => ("refunded", Tone::Warning),
        };
        let items = match self.item_count() {
            1 => "1 dish".to_owned(),
            n => format!("{n} dishes"),
        };
        Card {
            title: format!("{} for {}", self.restaurant, self.customer),
            subtitle: format!("{items}, {}", self.total),
            badges: vec![Badge::new(label, tone)],
        }
    }
}
