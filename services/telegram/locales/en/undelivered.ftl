# A result that was ready but could not be delivered (its file unreadable, or Telegram kept
# failing): the user is told it was not charged (a charged result was refunded).
result-undeliverable = ❌ { $model }: the result was ready, but it could not be delivered to you. { $refunded ->
        [none] It was free: nothing was charged.
       *[other] You were not charged: { $refunded } are back on your balance.
    }
