# The main menu (/start, /menu).
start-welcome = Hello, { $name }! I make images, video and audio with Kie.ai models.
    Your balance: { $balance }.
    Choose what to do:
start-welcome-back = Welcome back, { $name }! Your balance: { $balance }.
    Choose what to do:
menu-title = Main menu. Your balance: { $balance }.
menu-category = { $category ->
    [image] 🖼 Images
    [video] 🎬 Video
    [audio] 🎧 Audio
   *[upscale] 🔍 Upscale
    } · { $count }
menu-free = 🆓 Free models · { $count }
menu-last = ↻ Again: { $model }
menu-search = 🔎 Find a model
menu-balance = 💰 Balance: { $balance }
menu-history = 🧾 History
menu-topup = ➕ Top up
menu-help = ❓ Help
menu-language = 🌐 Язык / Language
menu-support = 💬 Support
topup-coming = Top-ups are coming soon. Here is the menu meanwhile.
