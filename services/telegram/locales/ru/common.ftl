# Shared by every screen: navigation buttons, pages, outdated buttons, failures.
ui-menu = ☰ Меню
ui-back = ‹ Назад
ui-prev = ‹
ui-next = ›
ui-page = { $page }/{ $pages }
ui-outdated = Эта кнопка устарела. Вот меню.
ui-double-tap = Уже сделано.
# The dispatcher's notice for an update it gave up on (id kept for its callers).
something_went_wrong = Извините, не получилось обработать ваше последнее действие. Если генерация успела начаться, она есть в «Истории», а если она не удастся, резерв вернётся на баланс. Отправьте /menu, чтобы продолжить.
