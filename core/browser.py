"""Which browser is asking: a random id kept in its session (a signed cookie), given on its first visit.

Orders belong to a browser id, not to a login: a shopper needs no account. The session lives in a signed
cookie (settings.SESSION_ENGINE), so knowing or giving an id reads and writes no database.
"""

from __future__ import annotations

import uuid

from django.http import HttpRequest

SESSION_KEY = "browser"


def browser_id(request: HttpRequest) -> str:
    """This browser's id, given to it now if it has none yet (the response then sets the session cookie)."""
    value = request.session.get(SESSION_KEY)
    if not value:
        value = uuid.uuid4().hex
        request.session[SESSION_KEY] = value
    return str(value)


def known_browser(request: HttpRequest) -> str:
    """This browser's id, or "" for a browser that has none yet (it owns nothing)."""
    return str(request.session.get(SESSION_KEY, ""))
