## Форма генерации (services/telegram/handlers/generate.py, services/telegram/forms).

generate-yes = Да
generate-no = Нет
generate-or = или
generate-free = бесплатно

generate-ask-enum = { $model }: выберите «{ $label }».
generate-ask-bool = { $model }: { $label }?
generate-ask-string = { $model }: отправьте «{ $label }».
generate-ask-string-max = { $model }: отправьте «{ $label }» (не больше { $max } символов).
generate-ask-int = { $model }: отправьте «{ $label }» — целое число.
generate-ask-int-range = { $model }: отправьте «{ $label }» — целое число от { $min } до { $max }.
generate-ask-float = { $model }: отправьте «{ $label }» — число.
generate-ask-float-range = { $model }: отправьте «{ $label }» — число от { $min } до { $max }.
generate-ask-media = { $model }: отправьте «{ $label }»: { $kind ->
    [image] фото или файл изображения
    [video] видео
   *[audio] аудиофайл или голосовое сообщение
} (до 20 МБ) или ссылку https.
generate-ask-media-items = { $model }: отправьте «{ $label }»: { $kind ->
    [image] фото или файлы изображений
    [video] видео
   *[audio] аудиофайлы или голосовые сообщения
} (до 20 МБ каждый, не больше { $max }) или ссылки https. Получено: { $count }.

generate-button-done = Готово ({ $count })
generate-button-default = Вернуть по умолчанию
generate-button-back = Назад
generate-button-cancel = Отмена
generate-button-generate = Создать · { $price }
generate-button-topup = Пополнить

generate-card-title = { $model }
generate-card-param = { $label }: { $value }{ $default ->
    [yes] {" "}(по умолчанию)
   *[no] {""}
}
generate-card-price = Цена: { $price }
generate-card-balance-after = Баланс после: { $balance }
generate-card-short = На балансе не хватает { $shortfall }.
generate-card-charged-on-success = Деньги списываются, только если генерация удалась.
generate-value-files = { $count ->
    [one] { $count } файл
    [few] { $count } файла
   *[other] { $count } файлов
}
generate-value-unset = не задано
generate-quick-offer = Создать это с { $model }?

generate-rule-enum = «{ $label }»: можно { $values }{ $field ->
    [duration] {" "}секунд
   *[other] {""}
}.
generate-rule-bool = «{ $label }»: нажмите «Да» или «Нет».
generate-rule-int = «{ $label }» должно быть целым числом.
generate-rule-number = «{ $label }» должно быть числом.
generate-rule-range = «{ $label }» должно быть от { $min } до { $max }.
generate-rule-min = «{ $label }» должно быть не меньше { $min }.
generate-rule-max = «{ $label }» должно быть не больше { $max }.
generate-rule-max-length = «{ $label }»: не больше { $max } символов (у вас { $length }).
generate-rule-min-length = «{ $label }»: не меньше { $min } символов.
generate-rule-empty = «{ $label }» не может быть пустым.
generate-rule-media = Для «{ $label }» нужно { $kind ->
    [image] фото или файл изображения
    [video] видео
   *[audio] аудиофайл или голосовое сообщение
} или ссылка https.
generate-rule-too-big = Файл весит { $size } МБ, а бот может получить не больше { $max } МБ. Отправьте файл поменьше или ссылку https.
generate-rule-text-needed = Для «{ $label }» нужен текст, а не файл.
generate-rule-no-file-expected = Сейчас файл не нужен.
generate-rule-items-min = Для «{ $label }» нужен хотя бы один файл.
generate-rule-max-items = В «{ $label }» не больше { $max } файлов.
generate-rule-use-buttons = Пожалуйста, воспользуйтесь кнопками.
generate-rule-stale = Эта кнопка устарела; вот текущая форма.
generate-rule-unsupported = «{ $label }» нельзя задать в чате.
generate-rule-invalid = «{ $label }»: { $reason }.

generate-duplicate = Уже в очереди.
generate-funds = Не хватает денег: нужно ещё { $shortfall }.
generate-active-limit = У вас уже идут { $limit } генерации. Дождитесь окончания одной из них и попробуйте снова.
generate-free-quota = Вы использовали { $limit } бесплатных генераций на сегодня. Они обновятся в 00:00 UTC; платные модели доступны сейчас.
generate-rate-limited = Слишком много запросов. Попробуйте через { $seconds } с.
generate-price-changed = Цена модели { $model } изменилась: теперь { $price }. Вот карточка с новой ценой; ничего не списано.
generate-model-unavailable = Модель { $model } сейчас недоступна. Ничего не списано; выберите другую модель в каталоге.
generate-cancelled = Отменено.
generate-no-form = Эта форма закрыта. Откройте модель в каталоге.
