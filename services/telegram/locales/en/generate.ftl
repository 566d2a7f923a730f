## The generation form (services/telegram/handlers/generate.py, services/telegram/forms).

generate-yes = Yes
generate-no = No
generate-or = or
generate-free = free

generate-ask-enum = { $model }: choose { $label }.
generate-ask-bool = { $model }: { $label }?
generate-ask-string = { $model }: send the { $label }.
generate-ask-string-max = { $model }: send the { $label } (at most { $max } characters).
generate-ask-int = { $model }: send { $label } as a whole number.
generate-ask-int-range = { $model }: send { $label }, a whole number from { $min } to { $max }.
generate-ask-float = { $model }: send { $label } as a number.
generate-ask-float-range = { $model }: send { $label }, a number from { $min } to { $max }.
generate-ask-media = { $model }: send the { $label }: { $kind ->
    [image] a photo or an image file
    [video] a video
   *[audio] an audio file or a voice message
} (up to 20 MB), or an https link.
generate-ask-media-items = { $model }: send the { $label }: { $kind ->
    [image] photos or image files
    [video] videos
   *[audio] audio files or voice messages
} (up to 20 MB each, at most { $max }), or https links. Received: { $count }.

generate-button-done = Done ({ $count })
generate-button-default = Reset to default
generate-button-back = Back
generate-button-cancel = Cancel
generate-button-generate = Generate · { $price }
generate-button-topup = Top up

generate-card-title = { $model }
generate-card-param = { $label }: { $value }{ $default ->
    [yes] {" "}(default)
   *[no] {""}
}
generate-card-price = Price: { $price }
generate-card-balance-after = Balance after: { $balance }
generate-card-short = Your balance is short by { $shortfall }.
generate-card-charged-on-success = You are charged only if the generation succeeds.
generate-value-files = { $count ->
    [one] 1 file
   *[other] { $count } files
}
generate-value-unset = not set
generate-quick-offer = Generate this with { $model }?

generate-rule-enum = { $label } must be { $values }{ $field ->
    [duration] {" "}seconds
   *[other] {""}
}.
generate-rule-bool = { $label }: tap Yes or No.
generate-rule-int = { $label } must be a whole number.
generate-rule-number = { $label } must be a number.
generate-rule-range = { $label } must be from { $min } to { $max }.
generate-rule-min = { $label } must be at least { $min }.
generate-rule-max = { $label } must be at most { $max }.
generate-rule-max-length = { $label }: at most { $max } characters (you sent { $length }).
generate-rule-min-length = { $label }: at least { $min } characters.
generate-rule-empty = { $label } must not be empty.
generate-rule-media = { $label } needs { $kind ->
    [image] a photo or an image file
    [video] a video
   *[audio] an audio file or a voice message
}, or an https link.
generate-rule-too-big = This file is { $size } MB; bots can fetch files of at most { $max } MB. Send a smaller one or an https link.
generate-rule-text-needed = { $label } needs text, not a file.
generate-rule-no-file-expected = No file is needed now.
generate-rule-items-min = { $label } needs at least one file.
generate-rule-max-items = { $label } takes at most { $max } files.
generate-rule-use-buttons = Please use the buttons.
generate-rule-stale = This button is out of date; here is the current form.
generate-rule-unsupported = { $label } cannot be set in the chat.
generate-rule-invalid = { $label }: { $reason }.

generate-duplicate = Already queued.
generate-funds = Not enough money: { $shortfall } more is needed.
generate-active-limit = You already have { $limit } generations running. Wait for one to finish, then try again.
generate-free-quota = You used today's { $limit } free generations. They renew at 00:00 UTC; paid models work now.
generate-rate-limited = Too many requests. Try again in { $seconds } s.
generate-price-changed = The price of { $model } changed: it is { $price } now. Here is the card with the new price; nothing was charged.
generate-model-unavailable = { $model } is not available right now. Nothing was charged; pick another model from the catalog.
generate-cancelled = Cancelled.
generate-no-form = This form is closed. Open a model from the catalog.
