# Telegram Stars: packages, the invoice, the pre-checkout's refusals, the credit, /paysupport.
stars-title = ⭐ Top up with Telegram Stars: 1 star = { $rate } ₽, credited as soon as Telegram confirms the payment.
stars-package = { $stars } ⭐ → { $amount }
stars-off = Payment with Telegram Stars is not available now.
stars-invoice-title = Balance { $amount }
stars-invoice-description = { $stars } Telegram Stars for { $amount } on your balance for AI generations.
stars-invoice-label = { $amount } on the balance
stars-refused-not-ours = This invoice is not one of mine.
stars-refused-no-package = This package is no longer offered. Open the top-up screen again.
stars-refused-wrong-amount = The amount does not match the package. Open the top-up screen again.
stars-refused-price-changed = The price changed since this invoice. Open the top-up screen again for a fresh one.
stars-credited = ✅ { $stars } ⭐ received: { $amount } is on your balance.
stars-credited-again = This payment is already on your balance ({ $amount }).
paysupport = 💬 Help with a payment: write to { $contact } with the date and amount; for Stars also the transaction id from Telegram's receipt. Refunds of Stars go back to your Telegram account.
paysupport-no-contact = 💬 Help with a payment: send /paysupport with what happened in the same message, e.g. “/paysupport paid 500 ₽ on 1 December, not credited”; the operators get it and contact you.
paysupport-forwarded = 📨 Sent to the operators; they will contact you.
paysupport-to-operator = 💬 /paysupport from user { $user }: { $text }
