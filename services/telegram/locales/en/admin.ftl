# /admin: the operators' console (ADMIN_ID users only).
admin-home = 🛠 Operators' console. What do you need?
admin-btn-queue = 💳 Pending payments
admin-btn-user = 👤 Find a user
admin-btn-stats = 📊 Stats
admin-btn-models = 🧩 Models
admin-btn-broadcast = 📣 Broadcast
admin-btn-cluster = 🖧 Cluster
admin-btn-home = ‹ Console
admin-btn-confirm = ✅ Confirm
admin-btn-send = ✅ Send to everyone
admin-outdated = This console screen is outdated. Open it again from /admin.
admin-refused = Refused: { $reason }
admin-queue-title = Pending payments: { $count }
admin-queue-line = #{ $id } user { $user }: { $amount } ({ $method }), { $date }
admin-btn-approve = ✅ #{ $id }
admin-btn-amend = ✏️ #{ $id }
admin-btn-reject = ❌ #{ $id }
admin-user-ask = Send a user id or @username.
admin-user-none = No such user. Send another id or @username.
admin-user-card = User { $id } ({ $name }, @{ $username })
    Balance: { $balance }, held: { $hold }
admin-user-jobs = Latest generations:
admin-user-job = #{ $id } { $model } { $status } { $price }
admin-user-ledger = Latest ledger entries:
admin-user-entry = { $date } { $kind } { $amount }
admin-user-payments = Latest payments:
admin-user-payment = #{ $id } { $method } { $status } { $amount }
admin-btn-adjust = ± Adjust the balance
admin-btn-refund = ↩ Refund job #{ $id }
admin-adjust-ask = Adjust the balance of user { $user }: send the amount in roubles with its sign and the reason, e.g. "+100 compensation for a failed video".
admin-adjust-bad = Send the amount and the reason, e.g. "+100 compensation" or "-50.5 duplicate top-up". The amount must not be zero.
admin-adjust-confirm = Adjust the balance of user { $user } by { $amount }?
    Reason: { $reason }
admin-adjust-funds = Refused: the balance cannot go below zero.
admin-adjust-done = Done. User { $user } now has { $balance }.
admin-adjust-again = Already applied (this confirm was pressed before). User { $user } has { $balance }.
admin-refund-confirm = Credit job #{ $job }'s price back to its user?
admin-refund-done = Job #{ $job } refunded. The user now has { $balance }.
admin-refund-again = Job #{ $job } was refunded before. The user has { $balance }.
admin-stats = 📊 Users: { $total } (new today { $new }; active 1 d { $active1 }, 7 d { $active7 }, 30 d { $active30 })
    Top-ups: { $topups }
    Revenue: { $revenue }, Kie cost: { $cost }, margin: { $margin }
    Failure rate: { $failure }, median time to result: { $median } s
admin-stats-status = Jobs by status:
admin-stats-models = Jobs by model:
admin-models = 🧩 Models (page { $page } of { $pages }). 🚫 = disabled.
admin-model = { $id }
    Catalog price: { $min } – { $max }
    Enabled: { $enabled }
    Price override: { $price }
admin-btn-disable = 🚫 Disable
admin-btn-enable = ✅ Enable
admin-btn-price = ₽ Set a price
admin-btn-noprice = ✖ Catalog price
admin-price-ask = Send the price in roubles, e.g. 25 or 12.50.
admin-price-bad = Send a price in roubles (0 or more), e.g. 25 or 12.50.
admin-broadcast-ask = Send the text of the broadcast (up to 4096 characters).
admin-broadcast-bad = The text must be 1 to 4096 characters. Send it again.
admin-broadcast-preview = Preview: every user gets the next message.
admin-broadcast-progress = 📣 Broadcast #{ $id }: sent { $sent } of { $total }, blocked { $blocked }, failed { $failed }…
admin-broadcast-done = 📣 Broadcast #{ $id } finished: sent { $sent } of { $total }, blocked { $blocked }, failed { $failed }.
admin-cluster = 🖧 Leader: { $leader }, term { $term }, lease expires in { $expires } s
    Instances:
admin-cluster-events = Last leader events:
admin-alert = ⚠️ Audit violation: { $rule }
    Where: { $where }
    { $detail }
admin-enabled-yes = yes
admin-enabled-no = no
admin-err-amount = the amount must not be zero and at most { $max } either way.
admin-err-reason = a reason is required.
admin-err-no-wallet = user { $user } has no wallet.
admin-err-no-job = there is no job #{ $job }.
admin-err-not-charged = job #{ $job } was not charged ({ $status }): a failed or expired job's hold was released, a running one's is released if it fails.
admin-err-no-model = there is no model #{ $index } in the catalog.
admin-err-negative-price = a price cannot be negative.
