# The command list Telegram shows (setMyCommands), per language.
command-start = Start and open the menu
command-menu = The main menu
command-balance = Balance and latest operations
command-help = What the bot can do
