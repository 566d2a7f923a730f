# Choosing the UI language.
language-choose = Choose the language of the bot:
language-name = { $language ->
    [ru] Русский
   *[en] English
    }
language-set = Done: I speak English now.
