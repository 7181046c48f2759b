# One way to write a date in English, everywhere (pages, emails, the admin): "2 Dec 2026", "2 Dec 2026, 17:51".
# Django's own differ by place ("Dec. 2, 2026", "12/02/2026") and put a full stop inside a sentence.
DATE_FORMAT = "j M Y"
SHORT_DATE_FORMAT = DATE_FORMAT
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
