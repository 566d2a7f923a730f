"""Money in: bank transfers approved by an operator, and Telegram Stars.

`service.Payments` is what handlers and the operators' console call (fenced units of work,
notices sent after each commit); `decisions` holds the same operations on a caller's
connection, for callers that compose them into a larger unit of work; `store.PaymentStore`
is the one class that reads sql/payments.sql.
"""
