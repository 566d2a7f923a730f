# /balance and the Balance button: the wallet and the latest ledger entries in plain words.
balance-text = Your balance: { $balance }.
    Held for running generations: { $hold }.
balance-latest = Latest operations:
balance-none = No operations yet.
balance-line = { $date }  { $kind ->
        [topup] Top-up
        [hold] Held for generation #{ $job }
        [commit] Paid for generation #{ $job }
        [release] Returned from generation #{ $job }
       *[adjustment] Correction by support
    }  { $amount }
balance-no-wallet = You have no wallet yet. Send /start.
