//! Presentation: cards and badges the apps draw, and the home page.
//!
//! Anything shown to a user implements [`Render`]. The home page lists recent orders, so this
//! module reads `crate::order`; `member` draws its profile with the [`Badge`] defined here.

pub mod home;

use serde::Serialize;

pub use home::{HomePage, home_page};

/// How a badge is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// Grey.
    Neutral,
    /// Gold, for things worth a look.
    Highlight,
    /// Green.
    Positive,
    /// Red.
    Warning,
}

/// A short coloured label, like "VIP" or "delivered".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Badge {
    /// Text on the badge.
    pub label: String,
    /// Its colour.
    pub tone: Tone,
}

impl Badge {
    /// A badge reading `label`.
    pub fn new(label: impl Into<String>, tone: Tone) -> Badge {
        Badge {
            label: label.into(),
            tone,
        }
    }
}

/// A card in a list: a title, one line under it, and badges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Card {
    /// First line, bold.
    pub title: String,
    /// Second line.
    pub subtitle: String,
    /// Badges on the right.
    pub badges: Vec<Badge>,
}

/// Something that can be drawn as a [`Card`].
pub trait Render {
    /// The card for `self`.
    fn card(&self) -> Card;
}

/// Cards for every item, in order.
pub fn cards<T: Render>(items: &[T]) -> Vec<Card> {
    items.iter().map(Render::card).collect()
}
