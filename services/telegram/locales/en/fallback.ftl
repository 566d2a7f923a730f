# Anything no other handler took.
fallback-hint = I did not understand “{ $text }”. Send /help to see the commands.
