from django.urls import path

from catalog import views

app_name = "catalog"

urlpatterns = [
    path("", views.index, name="index"),
    path("item/<int:item_id>", views.item_page, name="item"),
]
