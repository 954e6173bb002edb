//! Why the kitchen refused a ticket command. Each error has a stable kebab-case `code()` that
//! the kitchen service turns into a problem+json `type`; item indexes are 0-based.

/// Why a [`TicketCommand`](super::TicketCommand) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("no ticket has been opened for this order")]
    TicketNotFound,
    #[error("a ticket needs at least one item")]
    EmptyTicket,
    #[error("item {index}: quantity must be at least 1")]
    InvalidQuantity { index: usize },
    #[error("item {index} does not exist: the ticket has {count} items")]
    NoSuchItem { index: usize, count: usize },
    #[error("item {index} is already being prepared")]
    ItemAlreadyStarted { index: usize },
    #[error("item {index} is already ready")]
    ItemAlreadyReady { index: usize },
    #[error("every item of this ticket is already ready")]
    TicketAlreadyReady,
    #[error("a reason is required to reject a ticket")]
    ReasonRequired,
    #[error("the reason is longer than {max} characters")]
    ReasonTooLong { max: usize },
    #[error("too late to reject: part of this order is already ready")]
    TooLateToReject,
    #[error("this ticket is closed: its order was cancelled or rejected")]
    TicketClosed,
    #[error("item {index} is still pending: there is no step to undo")]
    NothingToUndo { index: usize },
    #[error("item {index}: its last step is more than {window_secs} seconds old and can no longer be undone")]
    UndoWindowPassed { index: usize, window_secs: i64 },
    #[error("the ticket is ready: its order and delivery have moved on, so no step can be undone")]
    TooLateToUndo,
}

impl TicketError {
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::TicketNotFound => "ticket-not-found",
            TicketError::EmptyTicket => "ticket-empty",
            TicketError::InvalidQuantity { .. } => "ticket-invalid-quantity",
            TicketError::NoSuchItem { .. } => "ticket-no-such-item",
            TicketError::ItemAlreadyStarted { .. } => "ticket-item-already-started",
            TicketError::ItemAlreadyReady { .. } => "ticket-item-already-ready",
            TicketError::TicketAlreadyReady => "ticket-already-ready",
            TicketError::ReasonRequired => "ticket-reason-required",
            TicketError::ReasonTooLong { .. } => "ticket-reason-too-long",
            TicketError::TooLateToReject => "ticket-too-late-to-reject",
            TicketError::TicketClosed => "ticket-closed",
            TicketError::NothingToUndo { .. } => "ticket-nothing-to-undo",
            TicketError::UndoWindowPassed { .. } => "ticket-undo-window-passed",
            TicketError::TooLateToUndo => "ticket-too-late-to-undo",
        }
    }
}

/// Why an [`EstimateCommand`](super::EstimateCommand) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EstimateError {
    #[error("a ticket cannot be quoted ready before the quote is made")]
    ReadyBeforeQuote,
}

impl EstimateError {
    pub fn code(&self) -> &'static str {
        match self {
            EstimateError::ReadyBeforeQuote => "estimate-ready-before-quote",
        }
    }
}

/// Why a [`DishStockCommand`](super::DishStockCommand) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DishStockError {
    #[error("the reason is longer than {max} characters")]
    ReasonTooLong { max: usize },
    #[error("only a chef or a manager may say what the kitchen has run out of")]
    KitchenStaffOnly,
}

impl DishStockError {
    pub fn code(&self) -> &'static str {
        match self {
            DishStockError::ReasonTooLong { .. } => "stock-reason-too-long",
            DishStockError::KitchenStaffOnly => "stock-kitchen-staff-only",
        }
    }
}
