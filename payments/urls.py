from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("buy/<int:item_id>", views.buy_item, name="buy"),
    path("item/<int:item_id>/intent", views.item_intent, name="item_intent"),
    path("cart/add", views.cart_add, name="cart_add"),
    path("orders/", views.order_list, name="order_list"),
    path("order/new/", views.order_new, name="order_new"),
    path("order/put/<str:order_id>", views.order_put, name="order_put"),
    path("order/remove/<str:order_id>", views.order_remove, name="order_remove"),
    path("order/buy/<str:order_id>", views.buy_order, name="order_buy"),
    path("order/intent/<str:order_id>", views.order_intent, name="order_intent"),
    path("order/<str:order_id>/change", views.order_change, name="order_change"),
    path("order/<str:order_id>/promo", views.order_promo, name="order_promo"),
    path("order/<str:order_id>/promo/remove", views.order_promo_remove, name="order_promo_remove"),
    path("order/<str:order_id>/return", views.intent_return, name="intent_return"),
    path("order/<str:order_id>/success", views.checkout_success, name="checkout_success"),
    path("order/<str:order_id>/canceled", views.checkout_cancel, name="checkout_cancel"),
    path("order/<str:order_id>", views.order_page, name="order"),
    path("webhooks/stripe/<str:currency>/", views.stripe_webhook, name="webhook"),
]
