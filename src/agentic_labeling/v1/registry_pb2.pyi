import datetime

from agentic_labeling.v1 import common_pb2 as _common_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Source(_message.Message):
    __slots__ = ("name", "kind", "uri", "display_name", "width", "height", "content_sha256", "frame_count", "object_count", "attributes", "create_time")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: _common_pb2.SourceKind
    uri: str
    display_name: str
    width: int
    height: int
    content_sha256: str
    frame_count: int
    object_count: int
    attributes: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[_common_pb2.SourceKind, str]] = ..., uri: _Optional[str] = ..., display_name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., content_sha256: _Optional[str] = ..., frame_count: _Optional[int] = ..., object_count: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("name", "frame_index", "timestamp", "uri", "content_sha256", "object_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    frame_index: int
    timestamp: _duration_pb2.Duration
    uri: str
    content_sha256: str
    object_count: int
    def __init__(self, name: _Optional[str] = ..., frame_index: _Optional[int] = ..., timestamp: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., uri: _Optional[str] = ..., content_sha256: _Optional[str] = ..., object_count: _Optional[int] = ...) -> None: ...

class Category(_message.Message):
    __slots__ = ("name", "display_name", "synonyms", "object_count", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    SYNONYMS_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    synonyms: _containers.RepeatedScalarFieldContainer[str]
    object_count: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., synonyms: _Optional[_Iterable[str]] = ..., object_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LabeledObject(_message.Message):
    __slots__ = ("name", "source", "frame_index", "category", "category_name", "bbox", "confidence", "area", "has_mask", "has_embedding", "detection_model", "is_validated", "validated_by", "validate_time", "quality_score", "track", "attributes", "create_time", "update_time")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    HAS_MASK_FIELD_NUMBER: _ClassVar[int]
    HAS_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    DETECTION_MODEL_FIELD_NUMBER: _ClassVar[int]
    IS_VALIDATED_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_BY_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    QUALITY_SCORE_FIELD_NUMBER: _ClassVar[int]
    TRACK_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    frame_index: int
    category: str
    category_name: str
    bbox: _common_pb2.BoundingBox
    confidence: float
    area: float
    has_mask: bool
    has_embedding: bool
    detection_model: str
    is_validated: bool
    validated_by: str
    validate_time: _timestamp_pb2.Timestamp
    quality_score: float
    track: str
    attributes: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., frame_index: _Optional[int] = ..., category: _Optional[str] = ..., category_name: _Optional[str] = ..., bbox: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., confidence: _Optional[float] = ..., area: _Optional[float] = ..., has_mask: _Optional[bool] = ..., has_embedding: _Optional[bool] = ..., detection_model: _Optional[str] = ..., is_validated: _Optional[bool] = ..., validated_by: _Optional[str] = ..., validate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quality_score: _Optional[float] = ..., track: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Track(_message.Message):
    __slots__ = ("name", "source", "category", "first_frame_index", "last_frame_index", "object_count", "objects", "create_time", "average_confidence", "first_frame_time", "last_frame_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    FIRST_FRAME_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    source: str
    category: str
    first_frame_index: int
    last_frame_index: int
    object_count: int
    objects: _containers.RepeatedCompositeFieldContainer[LabeledObject]
    create_time: _timestamp_pb2.Timestamp
    average_confidence: float
    first_frame_time: _duration_pb2.Duration
    last_frame_time: _duration_pb2.Duration
    def __init__(self, name: _Optional[str] = ..., source: _Optional[str] = ..., category: _Optional[str] = ..., first_frame_index: _Optional[int] = ..., last_frame_index: _Optional[int] = ..., object_count: _Optional[int] = ..., objects: _Optional[_Iterable[_Union[LabeledObject, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., average_confidence: _Optional[float] = ..., first_frame_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., last_frame_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateSourceRequest(_message.Message):
    __slots__ = ("source", "source_id", "return_existing", "image_data")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_EXISTING_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    source: Source
    source_id: str
    return_existing: bool
    image_data: bytes
    def __init__(self, source: _Optional[_Union[Source, _Mapping]] = ..., source_id: _Optional[str] = ..., return_existing: _Optional[bool] = ..., image_data: _Optional[bytes] = ...) -> None: ...

class GetSourceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSourceImageRequest(_message.Message):
    __slots__ = ("name", "frame_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    frame_index: int
    def __init__(self, name: _Optional[str] = ..., frame_index: _Optional[int] = ...) -> None: ...

class SourceImage(_message.Message):
    __slots__ = ("name", "data", "mime_type", "content_sha256", "width", "height")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    mime_type: str
    content_sha256: str
    width: int
    height: int
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., content_sha256: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ListSourcesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListSourcesResponse(_message.Message):
    __slots__ = ("sources", "next_page_token", "total_size")
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    sources: _containers.RepeatedCompositeFieldContainer[Source]
    next_page_token: str
    total_size: int
    def __init__(self, sources: _Optional[_Iterable[_Union[Source, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class DeleteSourceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateFrameRequest(_message.Message):
    __slots__ = ("parent", "frame", "image_data")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DATA_FIELD_NUMBER: _ClassVar[int]
    parent: str
    frame: Frame
    image_data: bytes
    def __init__(self, parent: _Optional[str] = ..., frame: _Optional[_Union[Frame, _Mapping]] = ..., image_data: _Optional[bytes] = ...) -> None: ...

class ListFramesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListFramesResponse(_message.Message):
    __slots__ = ("frames", "next_page_token")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    next_page_token: str
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateCategoryRequest(_message.Message):
    __slots__ = ("category",)
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    category: Category
    def __init__(self, category: _Optional[_Union[Category, _Mapping]] = ...) -> None: ...

class GetCategoryRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListCategoriesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListCategoriesResponse(_message.Message):
    __slots__ = ("categories", "next_page_token")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[Category]
    next_page_token: str
    def __init__(self, categories: _Optional[_Iterable[_Union[Category, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCategoryRequest(_message.Message):
    __slots__ = ("category", "update_mask")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    category: Category
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, category: _Optional[_Union[Category, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteCategoryRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class CreateObjectRequest(_message.Message):
    __slots__ = ("object", "object_id", "mask", "embedding")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    object: LabeledObject
    object_id: str
    mask: _common_pb2.Mask
    embedding: _common_pb2.Embedding
    def __init__(self, object: _Optional[_Union[LabeledObject, _Mapping]] = ..., object_id: _Optional[str] = ..., mask: _Optional[_Union[_common_pb2.Mask, _Mapping]] = ..., embedding: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ...) -> None: ...

class BatchCreateObjectsRequest(_message.Message):
    __slots__ = ("request_id", "requests", "create_missing_categories", "duplicate_iou_threshold")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CREATE_MISSING_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    requests: _containers.RepeatedCompositeFieldContainer[CreateObjectRequest]
    create_missing_categories: bool
    duplicate_iou_threshold: float
    def __init__(self, request_id: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[CreateObjectRequest, _Mapping]]] = ..., create_missing_categories: _Optional[bool] = ..., duplicate_iou_threshold: _Optional[float] = ...) -> None: ...

class MergedObject(_message.Message):
    __slots__ = ("request_index", "existing_object", "iou")
    REQUEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    EXISTING_OBJECT_FIELD_NUMBER: _ClassVar[int]
    IOU_FIELD_NUMBER: _ClassVar[int]
    request_index: int
    existing_object: str
    iou: float
    def __init__(self, request_index: _Optional[int] = ..., existing_object: _Optional[str] = ..., iou: _Optional[float] = ...) -> None: ...

class BatchCreateObjectsResponse(_message.Message):
    __slots__ = ("objects", "merged", "replayed")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    MERGED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[LabeledObject]
    merged: _containers.RepeatedCompositeFieldContainer[MergedObject]
    replayed: bool
    def __init__(self, objects: _Optional[_Iterable[_Union[LabeledObject, _Mapping]]] = ..., merged: _Optional[_Iterable[_Union[MergedObject, _Mapping]]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetObjectRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListObjectsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListObjectsResponse(_message.Message):
    __slots__ = ("objects", "next_page_token", "total_size")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[LabeledObject]
    next_page_token: str
    total_size: int
    def __init__(self, objects: _Optional[_Iterable[_Union[LabeledObject, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateObjectRequest(_message.Message):
    __slots__ = ("object", "update_mask")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    object: LabeledObject
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, object: _Optional[_Union[LabeledObject, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteObjectRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetObjectMaskRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ObjectMask(_message.Message):
    __slots__ = ("object", "png", "width", "height")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    object: str
    png: bytes
    width: int
    height: int
    def __init__(self, object: _Optional[str] = ..., png: _Optional[bytes] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class ObjectCorrection(_message.Message):
    __slots__ = ("object", "category_name", "bbox", "mask")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    object: str
    category_name: str
    bbox: _common_pb2.BoundingBox
    mask: _common_pb2.Mask
    def __init__(self, object: _Optional[str] = ..., category_name: _Optional[str] = ..., bbox: _Optional[_Union[_common_pb2.BoundingBox, _Mapping]] = ..., mask: _Optional[_Union[_common_pb2.Mask, _Mapping]] = ...) -> None: ...

class ValidateObjectsRequest(_message.Message):
    __slots__ = ("names", "corrections", "validated_by", "is_validated", "tracks")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    CORRECTIONS_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_BY_FIELD_NUMBER: _ClassVar[int]
    IS_VALIDATED_FIELD_NUMBER: _ClassVar[int]
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    corrections: _containers.RepeatedCompositeFieldContainer[ObjectCorrection]
    validated_by: str
    is_validated: bool
    tracks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., corrections: _Optional[_Iterable[_Union[ObjectCorrection, _Mapping]]] = ..., validated_by: _Optional[str] = ..., is_validated: _Optional[bool] = ..., tracks: _Optional[_Iterable[str]] = ...) -> None: ...

class ValidateObjectsResponse(_message.Message):
    __slots__ = ("objects",)
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[LabeledObject]
    def __init__(self, objects: _Optional[_Iterable[_Union[LabeledObject, _Mapping]]] = ...) -> None: ...

class SearchSimilarRequest(_message.Message):
    __slots__ = ("object", "vector", "filter", "top_k", "hnsw_ef", "exact")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    HNSW_EF_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    object: str
    vector: _common_pb2.Embedding
    filter: str
    top_k: int
    hnsw_ef: int
    exact: bool
    def __init__(self, object: _Optional[str] = ..., vector: _Optional[_Union[_common_pb2.Embedding, _Mapping]] = ..., filter: _Optional[str] = ..., top_k: _Optional[int] = ..., hnsw_ef: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class SimilarObject(_message.Message):
    __slots__ = ("object", "score")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    object: LabeledObject
    score: float
    def __init__(self, object: _Optional[_Union[LabeledObject, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class SearchSimilarResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SimilarObject]
    def __init__(self, results: _Optional[_Iterable[_Union[SimilarObject, _Mapping]]] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("filter", "histogram_bins")
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HISTOGRAM_BINS_FIELD_NUMBER: _ClassVar[int]
    filter: str
    histogram_bins: int
    def __init__(self, filter: _Optional[str] = ..., histogram_bins: _Optional[int] = ...) -> None: ...

class CountEntry(_message.Message):
    __slots__ = ("key", "display_name", "count")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    key: str
    display_name: str
    count: int
    def __init__(self, key: _Optional[str] = ..., display_name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class HistogramBin(_message.Message):
    __slots__ = ("lower", "upper", "count")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    count: int
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ..., count: _Optional[int] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("object_count", "source_count", "per_category", "per_source", "per_model", "validated_fraction", "confidence_histogram")
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PER_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    PER_SOURCE_FIELD_NUMBER: _ClassVar[int]
    PER_MODEL_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    object_count: int
    source_count: int
    per_category: _containers.RepeatedCompositeFieldContainer[CountEntry]
    per_source: _containers.RepeatedCompositeFieldContainer[CountEntry]
    per_model: _containers.RepeatedCompositeFieldContainer[CountEntry]
    validated_fraction: float
    confidence_histogram: _containers.RepeatedCompositeFieldContainer[HistogramBin]
    def __init__(self, object_count: _Optional[int] = ..., source_count: _Optional[int] = ..., per_category: _Optional[_Iterable[_Union[CountEntry, _Mapping]]] = ..., per_source: _Optional[_Iterable[_Union[CountEntry, _Mapping]]] = ..., per_model: _Optional[_Iterable[_Union[CountEntry, _Mapping]]] = ..., validated_fraction: _Optional[float] = ..., confidence_histogram: _Optional[_Iterable[_Union[HistogramBin, _Mapping]]] = ...) -> None: ...

class ListTracksRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListTracksResponse(_message.Message):
    __slots__ = ("tracks", "next_page_token")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tracks: _containers.RepeatedCompositeFieldContainer[Track]
    next_page_token: str
    def __init__(self, tracks: _Optional[_Iterable[_Union[Track, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetTrackRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateTrackRequest(_message.Message):
    __slots__ = ("source", "objects", "track_id")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    source: str
    objects: _containers.RepeatedScalarFieldContainer[str]
    track_id: str
    def __init__(self, source: _Optional[str] = ..., objects: _Optional[_Iterable[str]] = ..., track_id: _Optional[str] = ...) -> None: ...

class MergeTracksRequest(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class SplitTrackRequest(_message.Message):
    __slots__ = ("name", "frame_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    frame_index: int
    def __init__(self, name: _Optional[str] = ..., frame_index: _Optional[int] = ...) -> None: ...

class SplitTrackResponse(_message.Message):
    __slots__ = ("before", "after")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    before: Track
    after: Track
    def __init__(self, before: _Optional[_Union[Track, _Mapping]] = ..., after: _Optional[_Union[Track, _Mapping]] = ...) -> None: ...

class ReconcileStoresRequest(_message.Message):
    __slots__ = ("dry_run",)
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    def __init__(self, dry_run: _Optional[bool] = ...) -> None: ...

class ReconcileStoresResponse(_message.Message):
    __slots__ = ("outbox_applied", "vectors_restored", "vectors_removed", "masks_missing", "masks_removed")
    OUTBOX_APPLIED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_RESTORED_FIELD_NUMBER: _ClassVar[int]
    VECTORS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    MASKS_MISSING_FIELD_NUMBER: _ClassVar[int]
    MASKS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    outbox_applied: int
    vectors_restored: int
    vectors_removed: int
    masks_missing: int
    masks_removed: int
    def __init__(self, outbox_applied: _Optional[int] = ..., vectors_restored: _Optional[int] = ..., vectors_removed: _Optional[int] = ..., masks_missing: _Optional[int] = ..., masks_removed: _Optional[int] = ...) -> None: ...

class GetRegistryInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegistryInfo(_message.Message):
    __slots__ = ("embedding_dimension",)
    EMBEDDING_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    embedding_dimension: int
    def __init__(self, embedding_dimension: _Optional[int] = ...) -> None: ...
