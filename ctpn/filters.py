"""The API's default filter backend (``DEFAULT_FILTER_BACKENDS``): django-filter, stricter.

Kept apart from the rest of the API wiring because DRF imports it while ``rest_framework.generics``
is still loading.
"""

from django import forms
from django.db import models
from django_filters import rest_framework as filters
from django_filters.widgets import BooleanWidget


class StrictBooleanWidget(BooleanWidget):
    """Reads true/false like django-filter's widget, but hands on a value it does not understand
    instead of turning it into "no filter"."""

    def value_from_datadict(self, data, files, name):
        understood = super().value_from_datadict(data, files, name)
        raw = data.get(name)
        return raw if understood is None and raw not in (None, "") else understood


class StrictBooleanField(forms.NullBooleanField):
    def to_python(self, value):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        raise forms.ValidationError("Use true or false.", code="invalid")


class StrictBooleanFilter(filters.BooleanFilter):
    field_class = StrictBooleanField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", StrictBooleanWidget)
        super().__init__(*args, **kwargs)


class FilterSet(filters.FilterSet):
    """django-filter ignores a boolean it cannot read (``?is_exercise=yes`` would list real
    incidents and exercises together); here it is a 400 naming the filter."""

    FILTER_DEFAULTS = {
        **filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }


class FilterBackend(filters.DjangoFilterBackend):
    filterset_base = FilterSet
