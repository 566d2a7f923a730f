# Telegram Stars: пакеты, счёт, отказы предварительной проверки, зачисление, /paysupport.
stars-title = ⭐ Пополнение через Telegram Stars: 1 звезда = { $rate } ₽, зачисление сразу после подтверждения Telegram.
stars-package = { $stars } ⭐ → { $amount }
stars-off = Оплата Telegram Stars сейчас недоступна.
stars-invoice-title = Баланс { $amount }
stars-invoice-description = { $stars } Telegram Stars за { $amount } на балансе для генераций.
stars-invoice-label = { $amount } на баланс
stars-refused-not-ours = Это не мой счёт.
stars-refused-no-package = Такого пакета больше нет. Откройте пополнение заново.
stars-refused-wrong-amount = Сумма не совпадает с пакетом. Откройте пополнение заново.
stars-refused-price-changed = Цена изменилась после выставления счёта. Откройте пополнение заново, чтобы получить новый.
stars-credited = ✅ Получено { $stars } ⭐: { $amount } на вашем балансе.
stars-credited-again = Этот платёж уже зачислен ({ $amount }).
paysupport = 💬 Помощь с оплатой: напишите { $contact }, укажите дату и сумму; для Stars — ещё номер транзакции из чека Telegram. Возврат Stars приходит на ваш счёт в Telegram.
paysupport-no-contact = 💬 Помощь с оплатой: пришлите /paysupport и в том же сообщении, что случилось, например «/paysupport оплатил 500 ₽ 1 декабря, не зачислено»; операторы получат его и свяжутся с вами.
paysupport-forwarded = 📨 Передал операторам, они свяжутся с вами.
paysupport-to-operator = 💬 /paysupport от пользователя { $user }: { $text }
