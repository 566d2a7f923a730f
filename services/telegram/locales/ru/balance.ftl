# /balance and the Balance button: the wallet and the latest ledger entries in plain words.
balance-text = Ваш баланс: { $balance }.
    Зарезервировано под генерации: { $hold }.
balance-latest = Последние операции:
balance-none = Операций пока нет.
balance-line = { $date }  { $kind ->
        [topup] Пополнение
        [hold] Резерв под генерацию №{ $job }
        [commit] Оплата генерации №{ $job }
        [release] Возврат резерва генерации №{ $job }
       *[adjustment] Корректировка поддержкой
    }  { $amount }
balance-no-wallet = У вас ещё нет кошелька. Нажмите /start.
