# History: the user's generations, one generation's card, re-send and repeat.
history-title = У вас { $count ->
        [one] { $count } генерация
        [few] { $count } генерации
        [many] { $count } генераций
       *[other] { $count } генерации
    }. Сначала новые:
history-empty = Генераций пока нет. Выберите модель в меню.
history-item = { $status ->
        [pending] ⏳
        [submitted] ⚙️
        [succeeded] ✅
        [failed] ❌
       *[expired] ⌛
    } №{ $id } { $model } · { $price } · { $date }
job-card = Генерация №{ $id }: { $model }
    Статус: { $status ->
        [pending] в очереди
        [submitted] генерируется
        [succeeded] готово
        [failed] не удалась, резерв возвращён
       *[expired] слишком долго, резерв возвращён
    }
    Цена: { $price }
    Начата: { $date }
job-free = бесплатно
job-resend = 📤 Прислать результат ещё раз
job-history = ‹ История
job-resent = Отправлено ещё раз.
job-no-files = У этого результата нет файла, чтобы прислать его снова.
job-unknown = Этой генерации нет в вашей истории.
