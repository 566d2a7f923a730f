# The Support button.
support-contact = Write to { $contact }.
support-none = Support contacts are not set up yet. Please try again later.
support-open = ✉️ Write to support
