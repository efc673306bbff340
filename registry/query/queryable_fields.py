"""What each registry resource can be filtered and ordered by, as the API documents it.

One declaration per resource, shared by the List methods, SearchSimilar, GetStats and dataset
definitions, so a filter means the same thing everywhere.
"""

from __future__ import annotations

from agentic_labeling.registry.query.filtering import FieldType, FilterField, FilterSchema

__all__ = [
    "CATEGORY_FILTER",
    "CATEGORY_ORDER",
    "OBJECT_FILTER",
    "OBJECT_ORDER",
    "SOURCE_FILTER",
    "SOURCE_ORDER",
    "TRACK_FILTER",
    "TRACK_ORDER",
]

OBJECT_FILTER = FilterSchema(
    [
        # A category name or synonym, or a categories/{id} resource name.
        FilterField("category", FieldType.STRING),
        FilterField("source", FieldType.STRING),
        FilterField("frame_index", FieldType.INTEGER),
        FilterField("confidence", FieldType.NUMBER),
        FilterField("quality_score", FieldType.NUMBER),
        FilterField("area", FieldType.NUMBER),
        FilterField("is_validated", FieldType.BOOL),
        FilterField("validated_by", FieldType.STRING, nullable=True),
        FilterField("detection_model", FieldType.STRING, aliases=("model",)),
        FilterField("track", FieldType.STRING, nullable=True),
        FilterField("create_time", FieldType.TIMESTAMP),
        FilterField("update_time", FieldType.TIMESTAMP),
    ]
)
OBJECT_ORDER = frozenset(
    {"confidence", "quality_score", "area", "create_time", "update_time", "frame_index"}
)

SOURCE_FILTER = FilterSchema(
    [
        FilterField("kind", FieldType.ENUM, enum_values=frozenset({"IMAGE", "VIDEO"})),
        FilterField("display_name", FieldType.STRING),
        FilterField("content_sha256", FieldType.STRING),
        FilterField("create_time", FieldType.TIMESTAMP),
    ]
)
SOURCE_ORDER = frozenset({"display_name", "create_time"})

CATEGORY_FILTER = FilterSchema([FilterField("display_name", FieldType.STRING)])
CATEGORY_ORDER = frozenset({"display_name", "create_time"})

TRACK_FILTER = FilterSchema(
    [
        FilterField("source", FieldType.STRING),
        FilterField("category", FieldType.STRING),
        FilterField("object_count", FieldType.INTEGER),
    ]
)
TRACK_ORDER = frozenset(
    {
        "source",
        "object_count",
        "first_frame_index",
        "last_frame_index",
        "average_confidence",
        "create_time",
    }
)
