# /help and the Help button.
help-text = What I can do:
    /start or /menu - the main menu: models by category, free models, search
    /balance - your balance and latest operations
    /help - this help

    Pick a model, fill in what it needs, confirm the price: the money is held, and charged only when the result arrives. A failed generation returns the hold to your balance.
