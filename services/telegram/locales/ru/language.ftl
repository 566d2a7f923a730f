# Choosing the UI language.
language-choose = Выберите язык бота:
language-name = { $language ->
    [ru] Русский
   *[en] English
    }
language-set = Готово: теперь я говорю по-русски.
