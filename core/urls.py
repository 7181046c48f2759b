from django.contrib import admin
from django.urls import include, path

from core import views

admin.site.site_header = "Shop administration"
admin.site.site_title = "Shop admin"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("payments.urls")),
    path("", include("catalog.urls")),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.page_not_found"
handler500 = "core.views.server_error"
