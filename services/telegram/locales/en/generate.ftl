## The generation form (services/telegram/handlers/generate.py, services/telegram/forms).

field = { $name ->
    [prompt] Prompt
    [text] Text
    [negative_prompt] Negative prompt
    [image_input] Images
    [image_urls] Images
    [reference_image_input] Reference images
    [mask_input] Mask
    [end_image_url] Last frame
    [tail_image_url] Last frame
    [video_input] Video
    [video_url] Video
    [audio_input] Audio
    [audio_url] Audio
    [aspect_ratio] Aspect ratio
    [resolution] Resolution
    [image_resolution] Resolution
    [image_size] Image size
    [size] Size
    [quality] Quality
    [duration] Duration
    [n_frames] Length
    [num_frames] Frames
    [frames_per_second] Frames per second
    [output_format] Format
    [sound] Sound
    [remove_watermark] Remove watermark
    [cfg_scale] Prompt adherence
    [guidance_scale] Guidance scale
    [strength] Strength
    [shift] Shift
    [num_inference_steps] Steps
    [num_images] Images
    [max_images] Images
    [seed] Seed
    [style] Style
    [mode] Mode
    [rendering_speed] Speed
    [acceleration] Acceleration
    [upscale_factor] Upscale factor
    [prompt_optimizer] Improve prompt
    [enable_prompt_expansion] Expand prompt
    [expand_prompt] Expand prompt
    [enable_safety_checker] Safety checker
    [language_code] Language
    [tag_audio_events] Tag sound events
    [diarize] Tell speakers apart
   *[other] { $name }
}
yes = Yes
no = No
or = or
free = free

ask-enum = { $model }: choose { $label }.
ask-bool = { $model }: { $label }?
ask-string = { $model }: send the { $label }.
ask-string-max = { $model }: send the { $label } (at most { $max } characters).
ask-int = { $model }: send { $label } as a whole number.
ask-int-range = { $model }: send { $label }, a whole number from { $min } to { $max }.
ask-float = { $model }: send { $label } as a number.
ask-float-range = { $model }: send { $label }, a number from { $min } to { $max }.
ask-media = { $model }: send the { $label }: { $kind ->
    [image] a photo or an image file
    [video] a video
   *[audio] an audio file or a voice message
} (up to 20 MB), or an https link.
ask-media-items = { $model }: send the { $label }: { $kind ->
    [image] photos or image files
    [video] videos
   *[audio] audio files or voice messages
} (up to 20 MB each, at most { $max }), or https links. Received: { $count }.

button-done = Done ({ $count })
button-default = Reset to default
button-back = Back
button-cancel = Cancel
button-generate = Generate · { $price }
button-topup = Top up
button-retry = Try again

card-title = { $model }
card-param = { $label }: { $value }{ $default ->
    [yes] {" "}(default)
   *[no] {""}
}
card-price = Price: { $price }
card-balance-after = Balance after: { $balance }
card-short = Your balance is short by { $shortfall }.
card-charged-on-success = You are charged only if the generation succeeds.
value-files = { $count ->
    [one] 1 file
   *[other] { $count } files
}
value-unset = not set
quick-offer = Generate this with { $model }?

rule-enum = { $label } must be { $values }{ $field ->
    [duration] {" "}seconds
   *[other] {""}
}.
rule-bool = { $label }: tap Yes or No.
rule-int = { $label } must be a whole number.
rule-number = { $label } must be a number.
rule-range = { $label } must be from { $min } to { $max }.
rule-min = { $label } must be at least { $min }.
rule-max = { $label } must be at most { $max }.
rule-max-length = { $label }: at most { $max } characters (you sent { $length }).
rule-min-length = { $label }: at least { $min } characters.
rule-empty = { $label } must not be empty.
rule-media = { $label } needs { $kind ->
    [image] a photo or an image file
    [video] a video
   *[audio] an audio file or a voice message
}, or an https link.
rule-too-big = This file is { $size } MB; bots can fetch files of at most { $max } MB. Send a smaller one or an https link.
rule-text-needed = { $label } needs text, not a file.
rule-no-file-expected = No file is needed now.
rule-items-min = { $label } needs at least one file.
rule-max-items = { $label } takes at most { $max } files.
rule-use-buttons = Please use the buttons.
rule-stale = This button is out of date; here is the current form.
rule-unsupported = { $label } cannot be set in the chat.
rule-invalid = { $label }: { $reason }.

gen-queued = Queued: { $model }. I will send the result here.
gen-duplicate = Already queued.
gen-funds = Not enough money: { $shortfall } more is needed.
gen-active-limit = You already have { $limit } generations running. Wait for one to finish, then try again.
gen-free-quota = You used today's { $limit } free generations. They renew at 00:00 UTC; paid models work now.
gen-rate-limited = Too many requests. Try again in { $seconds } s.
gen-cancelled = Cancelled.
gen-no-form = This form is closed. Open a model from the catalog.
