# The main menu (/start, /menu).
start-welcome = Привет, { $name }! Я создаю изображения, видео и аудио с помощью нейросетей Kie.ai.
    Ваш баланс: { $balance }.
    Выберите, что сделать:
start-welcome-back = С возвращением, { $name }! Ваш баланс: { $balance }.
    Выберите, что сделать:
menu-title = Главное меню. Ваш баланс: { $balance }.
menu-category = { $category ->
    [image] 🖼 Изображения
    [video] 🎬 Видео
    [audio] 🎧 Аудио
   *[upscale] 🔍 Улучшение
    } · { $count }
menu-free = 🆓 Бесплатные модели · { $count }
menu-last = ↻ Снова: { $model }
menu-search = 🔎 Найти модель
menu-balance = 💰 Баланс: { $balance }
menu-history = 🧾 История
menu-topup = ➕ Пополнить
menu-help = ❓ Помощь
menu-language = 🌐 Язык / Language
menu-support = 💬 Поддержка
topup-coming = Пополнение скоро появится. А пока — меню.
