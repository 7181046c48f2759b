# English dates in lists as "25 Nov 2026" rather than Django's American "11/25/2026" (Russian keeps Django's
# "25.11.2026").
SHORT_DATE_FORMAT = "j M Y"
