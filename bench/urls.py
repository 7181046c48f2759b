"""The shop's urls plus `/bench/floor`: a trivial Django view behind the same middleware stack."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from core import urls as core_urls


def floor(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/floor", floor, name="bench_floor"), *core_urls.urlpatterns]

handler400 = core_urls.handler400
handler404 = core_urls.handler404
handler500 = core_urls.handler500
