# Anything no other handler took.
fallback-hint = Я не понял «{ $text }». Отправьте /help, чтобы увидеть команды.
