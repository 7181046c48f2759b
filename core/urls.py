from django.contrib import admin
from django.urls import include, path
from django.views.i18n import set_language

from core import views

admin.site.site_header = "Shop administration"
admin.site.site_title = "Shop admin"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    # The language switch in every page's header: POST language (and next), sets the django_language cookie.
    path("i18n/setlang/", set_language, name="set_language"),
    path("", include("payments.urls")),
    path("", include("catalog.urls")),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
