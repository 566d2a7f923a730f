# The command list Telegram shows (setMyCommands), per language.
command-start = Начать и открыть меню
command-menu = Главное меню
command-balance = Баланс и последние операции
command-help = Что умеет бот
