# History: the user's generations, one generation's card, re-send and repeat.
history-title = You have { $count ->
        [one] { $count } generation
       *[other] { $count } generations
    }. Newest first:
history-empty = No generations yet. Pick a model in the menu.
history-item = { $status ->
        [pending] ⏳
        [submitted] ⚙️
        [succeeded] ✅
        [failed] ❌
       *[expired] ⌛
    } #{ $id } { $model } · { $price } · { $date }
job-card = Generation #{ $id }: { $model }
    Status: { $status ->
        [pending] queued
        [submitted] generating
        [succeeded] done
        [failed] failed, the hold was returned
       *[expired] took too long, the hold was returned
    }
    Price: { $price }
    Started: { $date }
job-free = free
job-resend = 📤 Send the result again
job-history = ‹ History
job-resent = Sent again.
job-no-files = This result has no file to send again.
job-unknown = This generation is not in your history.
