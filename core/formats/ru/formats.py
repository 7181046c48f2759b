# One way to write a date in Russian, everywhere (pages, emails): "02.12.2026", "02.12.2026, 17:51". Django's
# own long form ends with the abbreviation of "year" and its full stop, which doubles the full stop of a
# sentence ending with a date (core/tests/test_i18n.py); the numeric form ends with a digit and fits a phone.
DATE_FORMAT = "d.m.Y"
SHORT_DATE_FORMAT = DATE_FORMAT
DATETIME_FORMAT = "d.m.Y, H:i"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
