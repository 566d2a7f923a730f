# Top-up by bank transfer (the user's screens) and the operators' review of receipts.
topup-title = ➕ Top up your balance (now { $balance }).
    By bank transfer: choose an amount from { $min } to { $max }, transfer it with the reference I give you, and send the receipt here. An operator checks it and the money lands on your balance.
topup-title-stars = ⭐ With Telegram Stars the balance is credited at once.
topup-preset = { $amount }
topup-other = ✏️ Another amount
topup-stars = ⭐ Pay with Telegram Stars
topup-pending-line = ⏳ Top-up #{ $id }: { $amount }, waiting for an operator.
topup-cancel = ✖ Cancel #{ $id }
topup-ask-amount = Type the amount in roubles: a whole number from { $min } to { $max }.
topup-bad-amount = I cannot take “{ $text }”: type a whole number of roubles from { $min } to { $max }.
topup-instructions = Transfer exactly { $amount }:
    Bank: { $bank }
    Recipient: { $holder }
    Phone (SBP): { $phone }
topup-card-line = Card: { $card }
topup-reference = Put this in the transfer comment: { $reference }
    Then send the receipt here: a screenshot (photo) or the bank's PDF.
topup-back = ‹ Other amounts
topup-receipt-expected = Send the receipt as a photo or a PDF document, please (or press Menu to stop).
topup-received = 📨 Receipt received: top-up #{ $id } of { $amount }. An operator checks it; I will tell you as soon as it is decided.
topup-receipt-used = This receipt was already sent for a top-up, so I cannot take it again. If you made a new transfer, send its own receipt.
topup-reference-used = The receipt for reference { $reference } is already with the operators. I will tell you when it is decided.
topup-cancelled = Top-up #{ $id } is cancelled.
topup-cancel-late = Top-up #{ $id } is already decided, it cannot be cancelled.
topup-user-approved = ✅ Top-up #{ $id } is approved: { $amount } is on your balance.
topup-user-rejected = ❌ Top-up #{ $id } was rejected: { $reason }
    If you think this is a mistake, write to support.
topup-user-expired = ⌛ Top-up #{ $id } expired without a decision. If you did transfer the money, write to support with the receipt.
review-caption = 💳 Top-up #{ $id }: { $amount }
    User: { $user }
    Reference: { $reference }
    Sent: { $date }
review-approve = ✅ Approve
review-amend = ✏️ Another amount
review-reject = ❌ Reject
review-approved = ✅ Approved by { $operator }: { $amount } credited.
review-rejected = ❌ Rejected by { $operator }: { $reason }
review-cancelled = ↩️ Cancelled by the user.
review-expired = ⌛ Expired without a decision.
review-done = Done.
review-already = Already decided (see the message).
review-ask-amount = Top-up #{ $id }: the user asked { $amount }. Type the amount in roubles to credit.
review-ask-reason = Top-up #{ $id }: type the reason for the rejection (the user will read it).
review-bad-amount = Type a whole number of roubles from 1 to { $max }.
