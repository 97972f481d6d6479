"""Data classifications, apart from the models: the site graph's lineage
follows personal data, and it loads (in the route worker) before pydantic
does (see :mod:`planner.startup`)."""

from __future__ import annotations

from enum import Enum


class Classification(str, Enum):
    phi = "phi"
    limited_data_set = "limited-data-set"
    deidentified = "deidentified"
    public = "public"
