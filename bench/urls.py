"""The shop's urls plus `/bench/floor`: a trivial Django view behind the same middleware stack.

`/bench/floor?bytes=N` answers an HTML body of N bytes, so that the item page is compared with a view that sends
as much as it does (bench.run asks for the item page's size).
"""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from core import urls as core_urls

MAX_BYTES = 1 << 20


def floor(request: HttpRequest) -> HttpResponse:
    try:
        size = min(MAX_BYTES, max(0, int(request.GET.get("bytes", "2"))))
    except ValueError:
        size = 2
    return HttpResponse(b"x" * size, content_type="text/html; charset=utf-8")


urlpatterns = [path("bench/floor", floor, name="bench_floor"), *core_urls.urlpatterns]

handler400 = core_urls.handler400
handler404 = core_urls.handler404
handler500 = core_urls.handler500
