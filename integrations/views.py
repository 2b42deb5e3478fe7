from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from customers.models import Customer


def home(request: HttpRequest) -> HttpResponse:
    customers = Customer.objects.prefetch_related("integrations").order_by("name")
    return render(request, "integrations/home.html", {"customers": customers})
