"""gunicorn's logger with secrets taken out of its access and error logs (`logger_class` in
deploy/gunicorn.conf.py).

gunicorn's `%(r)s` (the request line) and `%(q)s` (the query string) carry the whole query, and its error log
writes the request URI of a failed request ("Error handling request /order/.../return?..."). This class
redacts both with `core.redact`, so the access log keeps the path, the harmless parameters and the status, and
never a client secret.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from core.redact import redact_query, redact_text, redact_uri

# Atoms (besides r and q) that may hold a URL with a query: the referer and the raw URI from the environ.
_URL_ATOMS = ("f", "{referer}i", "{raw_uri}e", "{http_referer}e", "{query_string}e")


class RedactingLogger(Logger):
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["r"] = "{} {} {}".format(
            environ.get("REQUEST_METHOD", "-"),
            redact_uri(str(environ.get("RAW_URI", ""))),
            environ.get("SERVER_PROTOCOL", "-"),
        )
        atoms["q"] = redact_query(str(atoms.get("q") or ""))
        for name in _URL_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = redact_uri(value) if name != "{query_string}e" else redact_query(value)
        return atoms

    @staticmethod
    def _clean(msg: Any, args: tuple[Any, ...]) -> tuple[Any, tuple[Any, ...]]:
        return (
            redact_text(msg) if isinstance(msg, str) else msg,
            tuple(redact_text(a) if isinstance(a, str) else a for a in args),
        )

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().critical(msg, *args, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().error(msg, *args, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().warning(msg, *args, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().info(msg, *args, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().debug(msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().exception(msg, *args, **kwargs)

    def log(self, lvl: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
        msg, args = self._clean(msg, args)
        super().log(lvl, msg, *args, **kwargs)
