# /admin: пульт операторов (только для ADMIN_ID).
admin-home = 🛠 Пульт операторов. Что нужно?
admin-btn-queue = 💳 Ожидающие платежи
admin-btn-user = 👤 Найти пользователя
admin-btn-stats = 📊 Статистика
admin-btn-models = 🧩 Модели
admin-btn-broadcast = 📣 Рассылка
admin-btn-cluster = 🖧 Кластер
admin-btn-home = ‹ Пульт
admin-btn-confirm = ✅ Подтвердить
admin-btn-send = ✅ Отправить всем
admin-outdated = Этот экран пульта устарел. Откройте его снова через /admin.
admin-refused = Отказано: { $reason }
admin-queue-title = Ожидающих платежей: { $count }
admin-queue-line = #{ $id } пользователь { $user }: { $amount } ({ $method }), { $date }
admin-btn-approve = ✅ #{ $id }
admin-btn-amend = ✏️ #{ $id }
admin-btn-reject = ❌ #{ $id }
admin-user-ask = Пришлите id пользователя или @username.
admin-user-none = Такого пользователя нет. Пришлите другой id или @username.
admin-user-card = Пользователь { $id } ({ $name }, @{ $username })
    Баланс: { $balance }, в резерве: { $hold }
admin-user-jobs = Последние генерации:
admin-user-job = #{ $id } { $model } { $status } { $price }
admin-user-ledger = Последние проводки:
admin-user-entry = { $date } { $kind } { $amount }
admin-user-payments = Последние платежи:
admin-user-payment = #{ $id } { $method } { $status } { $amount }
admin-btn-adjust = ± Скорректировать баланс
admin-btn-refund = ↩ Вернуть за генерацию #{ $id }
admin-adjust-ask = Корректировка баланса пользователя { $user }: пришлите сумму в рублях со знаком и причину, например «+100 компенсация за неудачное видео».
admin-adjust-bad = Пришлите сумму и причину, например «+100 компенсация» или «-50.5 двойное пополнение». Сумма не может быть нулевой.
admin-adjust-confirm = Изменить баланс пользователя { $user } на { $amount }?
    Причина: { $reason }
admin-adjust-funds = Отказано: баланс не может стать отрицательным.
admin-adjust-done = Готово. У пользователя { $user } теперь { $balance }.
admin-adjust-again = Уже применено (это подтверждение уже нажимали). У пользователя { $user } { $balance }.
admin-refund-confirm = Вернуть пользователю стоимость генерации #{ $job }?
admin-refund-done = Стоимость генерации #{ $job } возвращена. У пользователя теперь { $balance }.
admin-refund-again = Стоимость генерации #{ $job } уже возвращали. У пользователя { $balance }.
admin-stats = 📊 Пользователи: { $total } (новых сегодня { $new }; активных за 1 д { $active1 }, 7 д { $active7 }, 30 д { $active30 })
    Пополнения: { $topups }
    Выручка: { $revenue }, затраты Kie: { $cost }, маржа: { $margin }
    Доля неудач: { $failure }, медиана времени до результата: { $median } с
admin-stats-status = Генерации по статусам:
admin-stats-models = Генерации по моделям:
admin-models = 🧩 Модели (страница { $page } из { $pages }). 🚫 — выключена.
admin-model = { $id }
    Цена по каталогу: { $min } – { $max }
    Включена: { $enabled }
    Своя цена: { $price }
admin-btn-disable = 🚫 Выключить
admin-btn-enable = ✅ Включить
admin-btn-price = ₽ Задать цену
admin-btn-noprice = ✖ Цена каталога
admin-price-ask = Пришлите цену в рублях, например 25 или 12.50.
admin-price-bad = Пришлите цену в рублях (0 или больше), например 25 или 12.50.
admin-broadcast-ask = Пришлите текст рассылки (до 4096 символов).
admin-broadcast-bad = Текст должен быть от 1 до 4096 символов. Пришлите его снова.
admin-broadcast-preview = Предпросмотр: каждый пользователь получит следующее сообщение.
admin-broadcast-progress = 📣 Рассылка #{ $id }: отправлено { $sent } из { $total }, заблокировали { $blocked }, ошибок { $failed }…
admin-broadcast-done = 📣 Рассылка #{ $id } завершена: отправлено { $sent } из { $total }, заблокировали { $blocked }, ошибок { $failed }.
admin-cluster = 🖧 Лидер: { $leader }, срок { $term }, аренда истекает через { $expires } с
    Экземпляры:
admin-cluster-events = Последние события лидерства:
admin-alert = ⚠️ Нарушение инварианта: { $rule }
    Где: { $where }
    { $detail }
admin-enabled-yes = да
admin-enabled-no = нет
admin-err-amount = сумма не может быть нулевой и больше { $max } в любую сторону.
admin-err-reason = нужна причина.
admin-err-no-wallet = у пользователя { $user } нет кошелька.
admin-err-no-job = генерации #{ $job } нет.
admin-err-not-charged = за генерацию #{ $job } не списывали ({ $status }): резерв неудачной или просроченной генерации уже снят, у идущей снимется, если она не удастся.
admin-err-no-model = модели #{ $index } в каталоге нет.
admin-err-negative-price = цена не может быть отрицательной.
