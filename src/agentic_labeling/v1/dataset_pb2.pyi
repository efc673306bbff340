import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SplitGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPLIT_GROUPING_UNSPECIFIED: _ClassVar[SplitGrouping]
    SPLIT_GROUPING_SOURCE: _ClassVar[SplitGrouping]
    SPLIT_GROUPING_FRAME: _ClassVar[SplitGrouping]

class DatasetState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATASET_STATE_UNSPECIFIED: _ClassVar[DatasetState]
    DATASET_STATE_DRAFT: _ClassVar[DatasetState]
    DATASET_STATE_BUILDING: _ClassVar[DatasetState]
    DATASET_STATE_READY: _ClassVar[DatasetState]
    DATASET_STATE_FAILED: _ClassVar[DatasetState]

class ExportFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_FORMAT_UNSPECIFIED: _ClassVar[ExportFormat]
    EXPORT_FORMAT_YOLO_DETECT: _ClassVar[ExportFormat]
    EXPORT_FORMAT_YOLO_SEGMENT: _ClassVar[ExportFormat]
    EXPORT_FORMAT_COCO: _ClassVar[ExportFormat]

class ImageTransfer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_TRANSFER_UNSPECIFIED: _ClassVar[ImageTransfer]
    IMAGE_TRANSFER_COPY: _ClassVar[ImageTransfer]
    IMAGE_TRANSFER_SYMLINK: _ClassVar[ImageTransfer]
    IMAGE_TRANSFER_HARDLINK: _ClassVar[ImageTransfer]

class LabelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_FORMAT_UNSPECIFIED: _ClassVar[LabelFormat]
    LABEL_FORMAT_COCO: _ClassVar[LabelFormat]
    LABEL_FORMAT_YOLO: _ClassVar[LabelFormat]
SPLIT_GROUPING_UNSPECIFIED: SplitGrouping
SPLIT_GROUPING_SOURCE: SplitGrouping
SPLIT_GROUPING_FRAME: SplitGrouping
DATASET_STATE_UNSPECIFIED: DatasetState
DATASET_STATE_DRAFT: DatasetState
DATASET_STATE_BUILDING: DatasetState
DATASET_STATE_READY: DatasetState
DATASET_STATE_FAILED: DatasetState
EXPORT_FORMAT_UNSPECIFIED: ExportFormat
EXPORT_FORMAT_YOLO_DETECT: ExportFormat
EXPORT_FORMAT_YOLO_SEGMENT: ExportFormat
EXPORT_FORMAT_COCO: ExportFormat
IMAGE_TRANSFER_UNSPECIFIED: ImageTransfer
IMAGE_TRANSFER_COPY: ImageTransfer
IMAGE_TRANSFER_SYMLINK: ImageTransfer
IMAGE_TRANSFER_HARDLINK: ImageTransfer
LABEL_FORMAT_UNSPECIFIED: LabelFormat
LABEL_FORMAT_COCO: LabelFormat
LABEL_FORMAT_YOLO: LabelFormat

class SplitRatios(_message.Message):
    __slots__ = ("train", "val", "test")
    TRAIN_FIELD_NUMBER: _ClassVar[int]
    VAL_FIELD_NUMBER: _ClassVar[int]
    TEST_FIELD_NUMBER: _ClassVar[int]
    train: float
    val: float
    test: float
    def __init__(self, train: _Optional[float] = ..., val: _Optional[float] = ..., test: _Optional[float] = ...) -> None: ...

class SplitStats(_message.Message):
    __slots__ = ("split", "image_count", "object_count", "objects_per_class")
    class ObjectsPerClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    split: str
    image_count: int
    object_count: int
    objects_per_class: _containers.ScalarMap[str, int]
    def __init__(self, split: _Optional[str] = ..., image_count: _Optional[int] = ..., object_count: _Optional[int] = ..., objects_per_class: _Optional[_Mapping[str, int]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("name", "display_name", "filter", "class_names", "split_ratios", "seed", "grouping", "state", "split_stats", "create_time", "build_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_RATIOS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    GROUPING_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SPLIT_STATS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    BUILD_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    display_name: str
    filter: str
    class_names: _containers.RepeatedScalarFieldContainer[str]
    split_ratios: SplitRatios
    seed: int
    grouping: SplitGrouping
    state: DatasetState
    split_stats: _containers.RepeatedCompositeFieldContainer[SplitStats]
    create_time: _timestamp_pb2.Timestamp
    build_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., display_name: _Optional[str] = ..., filter: _Optional[str] = ..., class_names: _Optional[_Iterable[str]] = ..., split_ratios: _Optional[_Union[SplitRatios, _Mapping]] = ..., seed: _Optional[int] = ..., grouping: _Optional[_Union[SplitGrouping, str]] = ..., state: _Optional[_Union[DatasetState, str]] = ..., split_stats: _Optional[_Iterable[_Union[SplitStats, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., build_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateDatasetRequest(_message.Message):
    __slots__ = ("dataset", "dataset_id")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    dataset_id: str
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[Dataset]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[Dataset, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class BuildDatasetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ExportDatasetRequest(_message.Message):
    __slots__ = ("name", "format", "output_dir", "image_transfer", "overwrite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: ExportFormat
    output_dir: str
    image_transfer: ImageTransfer
    overwrite: bool
    def __init__(self, name: _Optional[str] = ..., format: _Optional[_Union[ExportFormat, str]] = ..., output_dir: _Optional[str] = ..., image_transfer: _Optional[_Union[ImageTransfer, str]] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ExportDatasetResponse(_message.Message):
    __slots__ = ("path", "image_count", "object_count", "entry_point")
    PATH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTRY_POINT_FIELD_NUMBER: _ClassVar[int]
    path: str
    image_count: int
    object_count: int
    entry_point: str
    def __init__(self, path: _Optional[str] = ..., image_count: _Optional[int] = ..., object_count: _Optional[int] = ..., entry_point: _Optional[str] = ...) -> None: ...

class ImportLabelsRequest(_message.Message):
    __slots__ = ("format", "path", "validated_by", "request_id")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    VALIDATED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    format: LabelFormat
    path: str
    validated_by: str
    request_id: str
    def __init__(self, format: _Optional[_Union[LabelFormat, str]] = ..., path: _Optional[str] = ..., validated_by: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ImportLabelsResponse(_message.Message):
    __slots__ = ("sources_created", "objects_created", "categories_created")
    SOURCES_CREATED_FIELD_NUMBER: _ClassVar[int]
    OBJECTS_CREATED_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_CREATED_FIELD_NUMBER: _ClassVar[int]
    sources_created: int
    objects_created: int
    categories_created: int
    def __init__(self, sources_created: _Optional[int] = ..., objects_created: _Optional[int] = ..., categories_created: _Optional[int] = ...) -> None: ...
