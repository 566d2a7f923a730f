# Shared by every screen: navigation buttons, pages, outdated buttons, failures.
ui-menu = ☰ Menu
ui-back = ‹ Back
ui-prev = ‹
ui-next = ›
ui-page = { $page }/{ $pages }
ui-outdated = This button is outdated. Here is the menu.
ui-double-tap = Already done.
# The dispatcher's notice for an update it gave up on (id kept for its callers).
something_went_wrong = Sorry, I could not handle your last action. If a generation had started, it is in your History, and if it fails its hold returns to your balance. Send /menu to go on.
