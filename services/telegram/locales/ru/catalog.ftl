# The catalog: categories, model lists, the model card, search.
catalog-category = { $category ->
    [image] 🖼 Изображения
    [video] 🎬 Видео
    [audio] 🎧 Аудио
   *[upscale] 🔍 Улучшение
    }: { $count ->
        [one] { $count } модель
        [few] { $count } модели
        [many] { $count } моделей
       *[other] { $count } модели
    }, сначала дешёвые.
catalog-free = 🆓 Бесплатные модели: { $count ->
        [one] { $count } модель
        [few] { $count } модели
        [many] { $count } моделей
       *[other] { $count } модели
    }.
catalog-found = Найдено по запросу «{ $query }»: { $count ->
        [one] { $count } модель
        [few] { $count } модели
        [many] { $count } моделей
       *[other] { $count } модели
    }, сначала дешёвые. Напишите другое название, чтобы искать снова.
catalog-not-found = По запросу «{ $query }» ничего не нашлось. Напишите другое название или откройте меню.
catalog-search-prompt = Напишите часть названия модели, например «kling» или «flux»:
catalog-item = { $title } · { $price }
catalog-free-mark = 🆓 бесплатно
catalog-from = от { $price }
catalog-card = { $title }{ $free ->
        [yes] {" "}🆓
       *[no] {""}
    }
    { $description }

    Нужно указать: { $inputs }
    Цена: { $price }
    Обычно занимает: { $eta ->
        [image] около минуты
        [video] 2–10 минут
        [audio] 1–3 минуты
       *[upscale] 1–5 минут
    }
catalog-range = { $low } – { $high }
catalog-optional = по желанию: { $names }
catalog-generate = ✨ Сгенерировать
catalog-gone = Эта модель больше недоступна. Вот меню.
