## Форма генерации (services/telegram/handlers/generate.py, services/telegram/forms).

field = { $name ->
    [prompt] Запрос
    [text] Текст
    [negative_prompt] Чего избегать
    [image_input] Изображения
    [image_urls] Изображения
    [reference_image_input] Референсы
    [mask_input] Маска
    [end_image_url] Последний кадр
    [tail_image_url] Последний кадр
    [video_input] Видео
    [video_url] Видео
    [audio_input] Аудио
    [audio_url] Аудио
    [aspect_ratio] Соотношение сторон
    [resolution] Разрешение
    [image_resolution] Разрешение
    [image_size] Размер изображения
    [size] Размер
    [quality] Качество
    [duration] Длительность
    [n_frames] Длина
    [num_frames] Кадры
    [frames_per_second] Кадров в секунду
    [output_format] Формат
    [sound] Звук
    [remove_watermark] Убрать водяной знак
    [cfg_scale] Следование запросу
    [guidance_scale] Сила подсказки
    [strength] Сила
    [shift] Сдвиг
    [num_inference_steps] Шаги
    [num_images] Изображений
    [max_images] Изображений
    [seed] Зерно
    [style] Стиль
    [mode] Режим
    [rendering_speed] Скорость
    [acceleration] Ускорение
    [upscale_factor] Увеличение
    [prompt_optimizer] Улучшить запрос
    [enable_prompt_expansion] Расширить запрос
    [expand_prompt] Расширить запрос
    [enable_safety_checker] Проверка безопасности
    [language_code] Язык
    [tag_audio_events] Отмечать звуки
    [diarize] Различать говорящих
   *[other] { $name }
}
yes = Да
no = Нет
or = или
free = бесплатно

ask-enum = { $model }: выберите «{ $label }».
ask-bool = { $model }: { $label }?
ask-string = { $model }: отправьте «{ $label }».
ask-string-max = { $model }: отправьте «{ $label }» (не больше { $max } символов).
ask-int = { $model }: отправьте «{ $label }» — целое число.
ask-int-range = { $model }: отправьте «{ $label }» — целое число от { $min } до { $max }.
ask-float = { $model }: отправьте «{ $label }» — число.
ask-float-range = { $model }: отправьте «{ $label }» — число от { $min } до { $max }.
ask-media = { $model }: отправьте «{ $label }»: { $kind ->
    [image] фото или файл изображения
    [video] видео
   *[audio] аудиофайл или голосовое сообщение
} (до 20 МБ) или ссылку https.
ask-media-items = { $model }: отправьте «{ $label }»: { $kind ->
    [image] фото или файлы изображений
    [video] видео
   *[audio] аудиофайлы или голосовые сообщения
} (до 20 МБ каждый, не больше { $max }) или ссылки https. Получено: { $count }.

button-done = Готово ({ $count })
button-default = Вернуть по умолчанию
button-back = Назад
button-cancel = Отмена
button-generate = Создать · { $price }
button-topup = Пополнить
button-retry = Ещё раз

card-title = { $model }
card-param = { $label }: { $value }{ $default ->
    [yes] {" "}(по умолчанию)
   *[no] {""}
}
card-price = Цена: { $price }
card-balance-after = Баланс после: { $balance }
card-short = На балансе не хватает { $shortfall }.
card-charged-on-success = Деньги списываются, только если генерация удалась.
value-files = { $count ->
    [one] { $count } файл
    [few] { $count } файла
   *[other] { $count } файлов
}
value-unset = не задано
quick-offer = Создать это с { $model }?

rule-enum = «{ $label }»: можно { $values }{ $field ->
    [duration] {" "}секунд
   *[other] {""}
}.
rule-bool = «{ $label }»: нажмите «Да» или «Нет».
rule-int = «{ $label }» должно быть целым числом.
rule-number = «{ $label }» должно быть числом.
rule-range = «{ $label }» должно быть от { $min } до { $max }.
rule-min = «{ $label }» должно быть не меньше { $min }.
rule-max = «{ $label }» должно быть не больше { $max }.
rule-max-length = «{ $label }»: не больше { $max } символов (у вас { $length }).
rule-min-length = «{ $label }»: не меньше { $min } символов.
rule-empty = «{ $label }» не может быть пустым.
rule-media = Для «{ $label }» нужно { $kind ->
    [image] фото или файл изображения
    [video] видео
   *[audio] аудиофайл или голосовое сообщение
} или ссылка https.
rule-too-big = Файл весит { $size } МБ, а бот может получить не больше { $max } МБ. Отправьте файл поменьше или ссылку https.
rule-text-needed = Для «{ $label }» нужен текст, а не файл.
rule-no-file-expected = Сейчас файл не нужен.
rule-items-min = Для «{ $label }» нужен хотя бы один файл.
rule-max-items = В «{ $label }» не больше { $max } файлов.
rule-use-buttons = Пожалуйста, воспользуйтесь кнопками.
rule-stale = Эта кнопка устарела; вот текущая форма.
rule-unsupported = «{ $label }» нельзя задать в чате.
rule-invalid = «{ $label }»: { $reason }.

gen-queued = В очереди: { $model }. Результат пришлю сюда.
gen-duplicate = Уже в очереди.
gen-funds = Не хватает денег: нужно ещё { $shortfall }.
gen-active-limit = У вас уже идут { $limit } генерации. Дождитесь окончания одной из них и попробуйте снова.
gen-free-quota = Вы использовали { $limit } бесплатных генераций на сегодня. Они обновятся в 00:00 UTC; платные модели доступны сейчас.
gen-rate-limited = Слишком много запросов. Попробуйте через { $seconds } с.
gen-cancelled = Отменено.
gen-no-form = Эта форма закрыта. Откройте модель в каталоге.
