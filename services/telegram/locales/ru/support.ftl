# The Support button.
support-contact = Напишите { $contact }.
support-none = Контакты поддержки пока не настроены. Попробуйте позже.
support-open = ✉️ Написать в поддержку
